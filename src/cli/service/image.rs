//! Image references as docker's `reference` package reads them: the form docker's client
//! sends in a spec, and the form its tables show.

/// Docker Hub, the registry of references without a domain.
const HUB: &str = "docker.io/";
/// The Hub repository of official images, whose references drop it.
const OFFICIAL: &str = "library/";

/// A reference split into its familiar name (`busybox`, `lab/app`, `registry:5000/app`),
/// tag and digest.
struct Reference<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Reference<'a> {
    /// `None` for text docker cannot parse as a reference, which it leaves as it is.
    fn parse(image: &'a str) -> Option<Self> {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (image, None),
        };
        let path_start = rest.rfind('/').map_or(0, |at| at + 1);
        let (name, tag) = match rest[path_start..].split_once(':') {
            Some((_, tag)) => (&rest[..rest.len() - tag.len() - 1], Some(tag)),
            None => (rest, None),
        };
        let tag_ok = |tag: &str| {
            !tag.is_empty()
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        let component_ok = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        };
        let path = match name.split_once('/') {
            // Docker's rule for a leading domain: a dot, a port, an upper-case letter or
            // `localhost`.
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                path
            }
            _ => name,
        };
        let valid = path.split('/').all(component_ok) && tag.is_none_or(tag_ok);
        valid.then(|| Self {
            name: familiar(name),
            tag,
            digest: digest.filter(|d| !d.is_empty()),
        })
    }
}

/// A name without the parts docker leaves implicit: `docker.io/` (or its legacy
/// `index.docker.io/`) and, for official images, `library/`.
fn familiar(name: &str) -> &str {
    let Some(path) = name
        .strip_prefix(HUB)
        .or_else(|| name.strip_prefix("index.docker.io/"))
    else {
        return name;
    };
    match path.strip_prefix(OFFICIAL) {
        Some(official) if !official.contains('/') => official,
        _ => path,
    }
}

/// The image as docker's client sends it in a spec: in its familiar form, tagged `latest`
/// when it has neither a tag nor a digest (`docker.io/library/busybox` -> `busybox:latest`).
pub fn for_spec(image: &str) -> String {
    let Some(reference) = Reference::parse(image) else {
        return image.to_string();
    };
    let tag = match (reference.tag, reference.digest) {
        (Some(tag), _) => format!(":{tag}"),
        (None, Some(_)) => String::new(),
        (None, None) => ":latest".into(),
    };
    let digest = reference
        .digest
        .map(|d| format!("@{d}"))
        .unwrap_or_default();
    format!("{}{tag}{digest}", reference.name)
}

/// The image as docker's tables show it: a tagged reference in its familiar form without
/// its digest; any other as given.
pub fn for_display(image: &str) -> String {
    match Reference::parse(image) {
        Some(Reference {
            name,
            tag: Some(tag),
            ..
        }) => format!("{name}:{tag}"),
        _ => image.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef";

    #[test]
    fn specs_get_a_tag_as_docker_client_adds_one() {
        assert_eq!(for_spec("sleep"), "sleep:latest");
        assert_eq!(for_spec("lab/busybox:1"), "lab/busybox:1");
        assert_eq!(for_spec("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(for_spec("index.docker.io/lab/app:2"), "lab/app:2");
        assert_eq!(for_spec("localhost:5000/x/y"), "localhost:5000/x/y:latest");
        let digested = format!("busybox@{DIGEST}");
        assert_eq!(for_spec(&digested), digested);
        let both = format!("busybox:1@{DIGEST}");
        assert_eq!(for_spec(&format!("docker.io/library/{both}")), both);
        // Not references docker can parse: sent as given.
        assert_eq!(for_spec("Busybox"), "Busybox");
        assert_eq!(for_spec("a b"), "a b");
        assert_eq!(for_spec("x:"), "x:");
    }

    #[test]
    fn tables_show_tagged_images_short_and_without_digest() {
        assert_eq!(for_display("sleep"), "sleep");
        assert_eq!(for_display("sleep:latest"), "sleep:latest");
        assert_eq!(for_display("docker.io/library/nginx:1.25"), "nginx:1.25");
        assert_eq!(for_display("docker.io/lab/busybox:1"), "lab/busybox:1");
        assert_eq!(
            for_display(&format!("registry:5000/lab/app:2@{DIGEST}")),
            "registry:5000/lab/app:2"
        );
        let digested = format!("busybox@{DIGEST}");
        assert_eq!(for_display(&digested), digested);
        assert_eq!(for_display("registry:5000/app"), "registry:5000/app");
        assert_eq!(for_display("Nginx:1"), "Nginx:1");
    }
}
