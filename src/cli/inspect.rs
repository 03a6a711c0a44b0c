//! The output of the `inspect` commands, shared by nodes and services: docker's indented
//! JSON array, the same on one line, or a human-friendly text.

use anyhow::{Result, bail};
use serde::Serialize;

/// The formats `inspect --format` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectFormat {
    /// A compact JSON array on one line.
    Json,
    /// The same as `--pretty`.
    Pretty,
}

impl InspectFormat {
    /// The format `--pretty` and `--format` ask for together; `None` is docker's default,
    /// the indented JSON array.
    pub fn chosen(pretty: bool, format: Option<Self>) -> Option<Self> {
        if pretty { Some(Self::Pretty) } else { format }
    }
}

/// Prints what the lookups of the objects named on the command line `found`, in `format`,
/// with `pretty` writing one object's human form. Like docker, the pretty form prints
/// nothing unless every object was found, and the JSON forms print the objects found, then
/// fail with the errors (already worded for the user) of the others.
pub fn print<T: Serialize>(
    format: Option<InspectFormat>,
    found: Vec<Result<T, String>>,
    pretty: impl Fn(&T) -> String,
) -> Result<()> {
    let (objects, errors): (Vec<_>, Vec<_>) = found.into_iter().partition(Result::is_ok);
    let objects: Vec<T> = objects.into_iter().filter_map(Result::ok).collect();
    let errors: Vec<String> = errors.into_iter().filter_map(Result::err).collect();
    match format {
        Some(InspectFormat::Pretty) => {
            if let Some(error) = errors.into_iter().next() {
                bail!(error);
            }
            print!("{}", objects.iter().map(pretty).collect::<String>());
            return Ok(());
        }
        Some(InspectFormat::Json) => println!("{}", serde_json::to_string(&objects)?),
        None => println!("{}", indented_json(&objects)?),
    }
    if !errors.is_empty() {
        bail!(errors.join("\n"));
    }
    Ok(())
}

/// JSON indented by four spaces, as `docker inspect` prints it.
pub fn indented_json<T: Serialize>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_json_is_indented_by_four_spaces() {
        #[derive(Serialize)]
        struct Object {
            #[serde(rename = "ID")]
            id: &'static str,
        }
        assert_eq!(
            indented_json(&vec![Object { id: "x" }]).unwrap(),
            "[\n    {\n        \"ID\": \"x\"\n    }\n]"
        );
    }

    #[test]
    fn pretty_wins_over_format_and_default_is_indented_json() {
        use InspectFormat::{Json, Pretty};
        assert_eq!(InspectFormat::chosen(true, Some(Json)), Some(Pretty));
        assert_eq!(InspectFormat::chosen(false, Some(Json)), Some(Json));
        assert_eq!(InspectFormat::chosen(false, None), None);
    }

    #[test]
    fn pretty_fails_with_the_first_error_and_json_with_all() {
        let found = || vec![Ok(1), Err("no such a".to_string()), Err("no such b".into())];
        let pretty = |n: &i32| n.to_string();
        let error = print(Some(InspectFormat::Pretty), found(), pretty).unwrap_err();
        assert_eq!(error.to_string(), "no such a");
        let error = print(Some(InspectFormat::Json), found(), pretty).unwrap_err();
        assert_eq!(error.to_string(), "no such a\nno such b");
        assert!(print(None, vec![Ok::<_, String>(1)], pretty).is_ok());
    }
}
