//! Variables in a compose file's values, substituted as the docker CLI substitutes them:
//! `$VAR` and `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//! `${VAR:?message}` and `${VAR?message}` (required), and `$$` for a `$`. A `$` followed by
//! anything else is an error, so a shell's `$(...)` must be written `$$(...)`, for docker
//! and shoal alike.

use std::collections::HashMap;

use serde_yaml_ng::Value;

use super::ComposeError;
use super::keys::matches_path;

/// Where docker turns a substituted string back into the number or boolean the schema wants
/// (the paths shoal converts); `*` is any name or list position.
const CASTS: &[&str] = &[
    "services.*.deploy.replicas",
    "services.*.deploy.update_config.parallelism",
    "services.*.deploy.update_config.max_failure_ratio",
    "services.*.deploy.rollback_config.parallelism",
    "services.*.deploy.rollback_config.max_failure_ratio",
    "services.*.deploy.restart_policy.max_attempts",
    "services.*.deploy.placement.max_replicas_per_node",
    "services.*.healthcheck.retries",
    "services.*.healthcheck.disable",
    "services.*.ports.*.target",
    "services.*.ports.*.published",
    "services.*.volumes.*.read_only",
    "networks.*.external",
    "networks.*.internal",
    "networks.*.attachable",
    "volumes.*.external",
];

/// Substitutes the variables `env` holds in every value of `document` but the version and
/// the top-level extensions (keys stay as written). Returns whether anything changed.
pub fn interpolate(
    document: &mut Value,
    env: &HashMap<String, String>,
) -> Result<bool, ComposeError> {
    let Value::Mapping(root) = document else {
        return Ok(false);
    };
    let mut changed = false;
    for (key, value) in root.iter_mut() {
        let Some(section) = key.as_str() else {
            continue;
        };
        if section == "version" || section.starts_with("x-") {
            continue;
        }
        let mut path = vec![section.to_string()];
        changed |= walk(&mut path, value, env)?;
    }
    Ok(changed)
}

/// Substitutes in `value` and below it, `path` naming where it is.
fn walk(
    path: &mut Vec<String>,
    value: &mut Value,
    env: &HashMap<String, String>,
) -> Result<bool, ComposeError> {
    let mut changed = false;
    match value {
        Value::String(text) if text.contains('$') => {
            let substituted = substitute(text, env).map_err(|template| {
                ComposeError::Schema(format!(
                    "invalid interpolation format for {}: {template:?}. You may need to \
                     escape any $ with another $.",
                    path.join(".")
                ))
            })?;
            *value = if is_cast(path) {
                serde_yaml_ng::from_str(&substituted).unwrap_or(Value::String(substituted))
            } else {
                Value::String(substituted)
            };
            changed = true;
        }
        Value::Mapping(mapping) => {
            for (key, child) in mapping.iter_mut() {
                path.push(key.as_str().unwrap_or_default().to_string());
                changed |= walk(path, child, env)?;
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                path.push(index.to_string());
                changed |= walk(path, item, env)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(changed)
}

fn is_cast(path: &[String]) -> bool {
    CASTS.iter().any(|pattern| matches_path(pattern, path))
}

/// `template` with its variables substituted; on failure, the text docker quotes in its
/// error (the template itself, or why a required variable failed).
fn substitute(template: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let invalid = || template.to_string();
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (expression, next) = if let Some(next) = after.strip_prefix('$') {
            out.push('$');
            rest = next;
            continue;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(invalid)?;
            let expression = &braced[..end];
            if !is_expression(expression) {
                return Err(invalid());
            }
            (expression, &braced[end + 1..])
        } else {
            // Unbraced, docker's pattern still takes a default or a message, up to a `}`.
            let name_end = name_length(after).ok_or_else(invalid)?;
            let mut end = name_end;
            let tail = after[name_end..]
                .strip_prefix(':')
                .unwrap_or(&after[name_end..]);
            if tail.starts_with(['-', '?']) {
                end = after.len() - tail.len() + tail.find('}').unwrap_or(tail.len());
            }
            (&after[..end], &after[end..])
        };
        out.push_str(&evaluate(expression, env)?);
        rest = next;
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the variable name `text` starts with (`[_a-zA-Z][_a-zA-Z0-9]*`), if any.
fn name_length(text: &str) -> Option<usize> {
    let first = text.bytes().next()?;
    if !(first == b'_' || first.is_ascii_alphabetic()) {
        return None;
    }
    let word = |b: &u8| *b == b'_' || b.is_ascii_alphanumeric();
    Some(text.bytes().take_while(word).count())
}

/// Whether the inside of `${...}` is a name, optionally followed by `:-`, `-`, `:?` or `?`.
fn is_expression(expression: &str) -> bool {
    name_length(expression).is_some_and(|end| {
        let tail = &expression[end..];
        let tail = tail.strip_prefix(':').unwrap_or(tail);
        (end == expression.len()) || tail.starts_with(['-', '?'])
    })
}

/// The value of one expression, trying its forms in docker's order.
fn evaluate(expression: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let lookup = |name: &str| env.get(name).cloned();
    if let Some((name, default)) = expression.split_once(":-") {
        return Ok(lookup(name)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.into()));
    }
    if let Some((name, default)) = expression.split_once('-') {
        return Ok(lookup(name).unwrap_or_else(|| default.into()));
    }
    let required = |name: &str, message: &str, allow_empty: bool| {
        lookup(name)
            .filter(|v| allow_empty || !v.is_empty())
            .ok_or_else(|| format!("required variable {name} is missing a value: {message}"))
    };
    if let Some((name, message)) = expression.split_once(":?") {
        return required(name, message, false);
    }
    if let Some((name, message)) = expression.split_once('?') {
        return required(name, message, true);
    }
    Ok(lookup(expression).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([
            ("TAG".to_string(), "1.2".to_string()),
            ("EMPTY".to_string(), String::new()),
        ])
    }

    fn sub(template: &str) -> Result<String, String> {
        substitute(template, &env())
    }

    #[test]
    fn variables_defaults_and_escapes_as_docker_reads_them() {
        assert_eq!(sub("app:$TAG").unwrap(), "app:1.2");
        assert_eq!(sub("app:${TAG}-x").unwrap(), "app:1.2-x");
        assert_eq!(sub("${MISSING}").unwrap(), "");
        assert_eq!(sub("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(sub("${EMPTY-dflt}").unwrap(), "");
        assert_eq!(sub("${MISSING-dflt}").unwrap(), "dflt");
        assert_eq!(
            sub("echo $$(hostname) $$HOME").unwrap(),
            "echo $(hostname) $HOME"
        );
        assert_eq!(sub("${TAG:?needed}").unwrap(), "1.2");
    }

    #[test]
    fn bad_templates_and_missing_required_variables_fail() {
        assert_eq!(sub("echo $(hostname)").unwrap_err(), "echo $(hostname)");
        assert_eq!(sub("${1abc}").unwrap_err(), "${1abc}");
        assert_eq!(sub("${TAG").unwrap_err(), "${TAG");
        assert_eq!(
            sub("${EMPTY:?set it}").unwrap_err(),
            "required variable EMPTY is missing a value: set it"
        );
        assert_eq!(sub("${EMPTY?set it}").unwrap(), "");
    }

    #[test]
    fn substituted_counts_become_numbers_again() {
        let mut document: Value = serde_yaml_ng::from_str(
            "version: '$V'\nx-a: $$\nservices:\n  web:\n    image: app:${TAG}\n    deploy:\n      replicas: ${N}\n",
        )
        .unwrap();
        let env = HashMap::from([
            ("TAG".to_string(), "2".to_string()),
            ("N".to_string(), "3".to_string()),
        ]);
        assert!(interpolate(&mut document, &env).unwrap());
        let web = &document["services"]["web"];
        assert_eq!(web["image"], Value::String("app:2".into()));
        assert_eq!(web["deploy"]["replicas"], Value::Number(3.into()));
        assert_eq!(document["version"], Value::String("$V".into()));
    }

    #[test]
    fn errors_name_where_the_template_is() {
        let mut document: Value =
            serde_yaml_ng::from_str("services:\n  web:\n    command: echo $(date)\n").unwrap();
        let error = interpolate(&mut document, &HashMap::new()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid interpolation format for services.web.command: \"echo $(date)\". \
             You may need to escape any $ with another $."
        );
    }
}
