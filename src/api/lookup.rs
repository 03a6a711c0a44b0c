//! Finding an object the way the docker CLI names it.

use std::collections::BTreeMap;

use super::error::{ApiError, ApiResult};

/// Finds the object `reference` names, as docker does: its full ID, else its name (`name_of`),
/// else a unique ID prefix. Several matches are an error, not a guess.
pub fn find<'a, T>(
    objects: &'a BTreeMap<String, T>,
    reference: &str,
    kind: &str,
    name_of: impl Fn(&T) -> Option<&str>,
) -> ApiResult<&'a T> {
    if let Some(object) = objects.get(reference) {
        return Ok(object);
    }
    let named: Vec<&T> = objects
        .values()
        .filter(|o| name_of(o) == Some(reference))
        .collect();
    let candidates = if named.is_empty() {
        let prefixed = objects
            .iter()
            .filter(|(id, _)| !reference.is_empty() && id.starts_with(reference));
        prefixed.map(|(_, object)| object).collect()
    } else {
        named
    };
    match candidates.as_slice() {
        [object] => Ok(object),
        [] => Err(ApiError::not_found(format!("{kind} {reference} not found"))),
        many => Err(ApiError::bad_request(format!(
            "{kind} {reference} is ambiguous ({} matches found)",
            many.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_id_then_name_then_unique_prefix() {
        let objects = BTreeMap::from([("abc1".to_string(), "web"), ("abd2".to_string(), "db")]);
        fn name<'a>(object: &'a &str) -> Option<&'a str> {
            Some(object)
        }
        assert_eq!(*find(&objects, "abd2", "service", name).unwrap(), "db");
        assert_eq!(*find(&objects, "web", "service", name).unwrap(), "web");
        assert_eq!(*find(&objects, "abc", "service", name).unwrap(), "web");
        let ambiguous = find(&objects, "ab", "service", name).unwrap_err();
        assert!(ambiguous.message().contains("ambiguous (2 matches found)"));
        assert!(
            find(&objects, "zz", "service", name)
                .unwrap_err()
                .message()
                .contains("service zz not found")
        );
        assert!(
            find(&objects, "", "service", name).is_err(),
            "an empty reference names nothing"
        );
    }
}
