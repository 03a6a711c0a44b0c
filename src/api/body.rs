//! Request bodies and query strings, with docker-style 400s when they are malformed.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body; malformed JSON is a 400 that says what is wrong, never a panic.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))
    }
}

/// A boolean query parameter as docker accepts it (`1`, `true`, `True`).
pub fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true" | "True"))
}

/// The `version` query parameter of updates: the object version the client read.
#[derive(serde::Deserialize)]
pub struct VersionQuery {
    version: Option<String>,
}

impl VersionQuery {
    /// The version, which updates require.
    pub fn version(&self) -> Result<u64, ApiError> {
        let raw = self
            .version
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing version parameter"))?;
        raw.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid version parameter {raw:?}")))
    }
}

/// Docker's `filters` query parameter: `{"key": {"value": true}}`, or the older
/// `{"key": ["value"]}`, as a map from key to values.
#[derive(Debug, Default, PartialEq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses `filters`, refusing keys outside `allowed` as docker does.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?;
        let serde_json::Value::Object(keys) = value else {
            return Err(ApiError::bad_request(
                "invalid filters: expected a JSON object",
            ));
        };
        let mut filters = BTreeMap::new();
        for (key, values) in keys {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
            let values: Vec<String> = match values {
                serde_json::Value::Object(map) => map
                    .into_iter()
                    .filter(|(_, on)| on == true)
                    .map(|(v, _)| v)
                    .collect(),
                serde_json::Value::Array(list) => list
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filters: bad values for '{key}'"
                    )));
                }
            };
            filters.insert(key, values);
        }
        Ok(Filters(filters))
    }

    /// True when `key` is not filtered on, or `test` accepts one of its values.
    pub fn accepts(&self, key: &str, test: impl Fn(&str) -> bool) -> bool {
        self.0
            .get(key)
            .is_none_or(|values| values.is_empty() || values.iter().any(|v| test(v)))
    }

    /// True when `labels` has every label the `label` filter names: `KEY` asks for the key,
    /// `KEY=VALUE` for the key with that value. Unlike other keys, its values must all hold,
    /// as in docker (`docker stack ps` narrows by `com.docker.stack.namespace=NAME`).
    pub fn accepts_labels(&self, labels: Option<&HashMap<String, String>>) -> bool {
        self.0.get("label").into_iter().flatten().all(|wanted| {
            let (key, value) = match wanted.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (wanted.as_str(), None),
            };
            labels
                .and_then(|labels| labels.get(key))
                .is_some_and(|have| value.is_none_or(|v| v == have))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filter_forms_parse() {
        let new = Filters::parse(Some(r#"{"role":{"manager":true}}"#), &["role"]).unwrap();
        let old = Filters::parse(Some(r#"{"role":["manager"]}"#), &["role"]).unwrap();
        assert_eq!(new, old);
        assert!(new.accepts("role", |v| v == "manager"));
        assert!(!new.accepts("role", |v| v == "worker"));
        assert!(
            new.accepts("name", |_| false),
            "an absent key filters nothing"
        );
    }

    #[test]
    fn unknown_keys_and_bad_json_are_400() {
        assert!(Filters::parse(Some(r#"{"colour":["red"]}"#), &["role"]).is_err());
        assert!(Filters::parse(Some("{"), &["role"]).is_err());
        assert!(Filters::parse(Some("[1]"), &["role"]).is_err());
    }

    #[test]
    fn every_label_asked_for_must_be_there() {
        let labels = HashMap::from([
            ("com.docker.stack.namespace".to_string(), "demo".to_string()),
            ("tier".to_string(), "web".to_string()),
        ]);
        let filter = |raw: &str| Filters::parse(Some(raw), &["label"]).unwrap();
        let accepts = |raw: &str| filter(raw).accepts_labels(Some(&labels));
        assert!(accepts(
            r#"{"label":{"com.docker.stack.namespace=demo":true}}"#
        ));
        assert!(accepts(r#"{"label":{"com.docker.stack.namespace":true}}"#));
        assert!(accepts(
            r#"{"label":{"tier=web":true,"com.docker.stack.namespace":true}}"#
        ));
        assert!(!accepts(r#"{"label":{"tier=web":true,"tier=db":true}}"#));
        assert!(!accepts(
            r#"{"label":{"com.docker.stack.namespace=other":true}}"#
        ));
        assert!(!accepts(r#"{"label":{"tier=":true}}"#));
        assert!(
            filter("{}").accepts_labels(None),
            "no label filter, no labels needed"
        );
        assert!(!filter(r#"{"label":["tier"]}"#).accepts_labels(None));
    }
}
