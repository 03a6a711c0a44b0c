//! Which keys a compose file may use, checked as the docker CLI checks them before it
//! converts anything: first the options it forbids outright, then the keys its JSON schema
//! (v3) does not know; what remains may still draw a warning, for the options swarm ignores
//! or docker deprecated, and for those shoal does not convert yet.

use serde_yaml_ng::Value;

use super::ComposeError;

/// Service options docker refuses, with the advice it gives for each.
const FORBIDDEN: &[(&str, &str)] = &[
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("extends", "Support for `extends` is not implemented yet."),
    ("mem_limit", "Set resource limits using deploy.resources"),
    (
        "memswap_limit",
        "Set resource limits using deploy.resources",
    ),
    (
        "volume_driver",
        "Instead of setting the volume driver on the service, define a volume using the \
         top-level `volumes` option and specify the driver there.",
    ),
    (
        "volumes_from",
        "To share a volume between services, define it using the top-level `volumes` option \
         and reference it from each service that shares it using the service-level `volumes` \
         option.",
    ),
];

/// Service options docker accepts but swarm has no use for: "Ignoring unsupported options".
const UNSUPPORTED: &[&str] = &[
    "build",
    "cgroup_parent",
    "cgroupns_mode",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// Service options docker deprecated, with its explanation.
const DEPRECATED: &[(&str, &str)] = &[
    (
        "container_name",
        "Setting the container name is not supported.",
    ),
    (
        "expose",
        "Exposing ports is unnecessary - services on the same network can access each \
         other's containers on any port.",
    ),
];

/// Service options docker converts but shoal does not yet; everything else a service may
/// hold is converted, ignored as docker ignores it, or `depends_on`, which swarm has no use
/// for and docker drops without a word.
const NOT_CONVERTED: &[&str] = &[
    "cap_add",
    "cap_drop",
    "configs",
    "credential_spec",
    "dns",
    "dns_search",
    "env_file",
    "extra_hosts",
    "init",
    "isolation",
    "logging",
    "oom_score_adj",
    "read_only",
    "secrets",
    "stdin_open",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
];

/// The service keys shoal converts (or, `depends_on`, knowingly drops).
const CONVERTED: &[&str] = &[
    "command",
    "depends_on",
    "deploy",
    "entrypoint",
    "environment",
    "healthcheck",
    "hostname",
    "image",
    "labels",
    "networks",
    "ports",
    "stop_grace_period",
    "user",
    "volumes",
    "working_dir",
];

const UPDATE_KEYS: &[&str] = &[
    "delay",
    "failure_action",
    "max_failure_ratio",
    "monitor",
    "order",
    "parallelism",
];

/// The keys docker's v3 schema allows in each mapping, by path; `*` stands for any service,
/// network or volume name and any list position. Service keys are the union of the lists
/// above, checked separately.
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "configs", "networks", "secrets", "services", "version", "volumes",
        ],
    ),
    (
        "services.*.deploy",
        &[
            "endpoint_mode",
            "labels",
            "mode",
            "placement",
            "replicas",
            "resources",
            "restart_policy",
            "rollback_config",
            "update_config",
        ],
    ),
    (
        "services.*.deploy.resources",
        &["limits", "memory_swap", "memory_swappiness", "reservations"],
    ),
    (
        "services.*.deploy.resources.limits",
        &["cpus", "memory", "pids"],
    ),
    (
        "services.*.deploy.resources.reservations",
        &["cpus", "generic_resources", "memory"],
    ),
    (
        "services.*.deploy.restart_policy",
        &["condition", "delay", "max_attempts", "window"],
    ),
    (
        "services.*.deploy.placement",
        &["constraints", "max_replicas_per_node", "preferences"],
    ),
    ("services.*.deploy.placement.preferences.*", &["spread"]),
    (
        "services.*.healthcheck",
        &[
            "disable",
            "interval",
            "retries",
            "start_interval",
            "start_period",
            "test",
            "timeout",
        ],
    ),
    ("services.*.deploy.update_config", UPDATE_KEYS),
    ("services.*.deploy.rollback_config", UPDATE_KEYS),
    (
        "services.*.networks.*",
        &["aliases", "driver_opts", "ipv4_address", "ipv6_address"],
    ),
    (
        "services.*.ports.*",
        &["mode", "protocol", "published", "target"],
    ),
    (
        "services.*.volumes.*",
        &[
            "bind",
            "consistency",
            "read_only",
            "source",
            "target",
            "tmpfs",
            "type",
            "volume",
        ],
    ),
    (
        "networks.*",
        &[
            "attachable",
            "driver",
            "driver_opts",
            "external",
            "internal",
            "ipam",
            "labels",
            "name",
        ],
    ),
    ("networks.*.ipam", &["config", "driver"]),
    ("networks.*.ipam.config.*", &["subnet"]),
    (
        "volumes.*",
        &["driver", "driver_opts", "external", "labels", "name"],
    ),
];

/// What a file's keys call for, once they are all allowed: one message per kind, worded
/// and ordered as docker prints them (then shoal's own), for stderr.
pub fn check(document: &Value) -> Result<Vec<String>, ComposeError> {
    let Value::Mapping(root) = document else {
        return Err(ComposeError::Schema(
            "Top-level object must be a mapping".into(),
        ));
    };
    let services = match root.get("services") {
        Some(Value::Mapping(services)) => services.iter().collect(),
        _ => Vec::new(),
    };
    let used = |key: &str| {
        services
            .iter()
            .any(|(_, service)| service.get(key).is_some())
    };
    let forbidden: Vec<String> = FORBIDDEN
        .iter()
        .filter(|(key, _)| used(key))
        .map(|(key, advice)| format!("{key}: {advice}"))
        .collect();
    if !forbidden.is_empty() {
        return Err(ComposeError::Forbidden(forbidden.join("\n\n")));
    }
    for (name, service) in &services {
        let name = name.as_str().unwrap_or_default();
        if name.is_empty() || !name.bytes().all(is_name_byte) {
            return Err(additional("services", name));
        }
        check_service(name, service)?;
    }
    check_mapping(&mut Vec::new(), document)?;
    let mut warnings = Vec::new();
    let unsupported: Vec<&str> = UNSUPPORTED.iter().copied().filter(|k| used(k)).collect();
    if !unsupported.is_empty() {
        warnings.push(format!(
            "Ignoring unsupported options: {}",
            unsupported.join(", ")
        ));
    }
    let deprecated: Vec<String> = DEPRECATED
        .iter()
        .filter(|(key, _)| used(key))
        .map(|(key, why)| format!("{key}: {why}"))
        .collect();
    if !deprecated.is_empty() {
        warnings.push(format!(
            "Ignoring deprecated options:\n\n{}",
            deprecated.join("\n\n")
        ));
    }
    let skipped: Vec<&str> = NOT_CONVERTED.iter().copied().filter(|k| used(k)).collect();
    if !skipped.is_empty() {
        warnings.push(format!(
            "Ignoring options shoal does not support yet: {}",
            skipped.join(", ")
        ));
    }
    Ok(warnings)
}

/// Refuses a service key that is in none of the lists: docker's schema does not know it.
fn check_service(name: &str, service: &Value) -> Result<(), ComposeError> {
    let Value::Mapping(service) = service else {
        return Ok(()); // a null service; serde names the type it wanted
    };
    let known = |key: &str| {
        key.starts_with("x-")
            || CONVERTED.contains(&key)
            || UNSUPPORTED.contains(&key)
            || NOT_CONVERTED.contains(&key)
            || DEPRECATED.iter().any(|(k, _)| *k == key)
    };
    for key in service.keys() {
        let key = key_text(key);
        if !known(&key) {
            return Err(additional(&format!("services.{name}"), &key));
        }
    }
    Ok(())
}

/// Walks the document, refusing a key that the schema entry for its mapping's path lacks.
fn check_mapping(path: &mut Vec<String>, value: &Value) -> Result<(), ComposeError> {
    match value {
        Value::Mapping(mapping) => {
            let allowed = schema_for(path);
            for (key, child) in mapping {
                let key = key_text(key);
                if let Some(allowed) = allowed {
                    if !key.starts_with("x-") && !allowed.contains(&key.as_str()) {
                        return Err(additional(&path.join("."), &key));
                    }
                }
                path.push(key);
                check_mapping(path, child)?;
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string());
                check_mapping(path, item)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// The schema entry whose pattern matches `path`.
fn schema_for(path: &[String]) -> Option<&'static [&'static str]> {
    SCHEMA
        .iter()
        .find(|(pattern, _)| matches_path(pattern, path))
        .map(|(_, keys)| *keys)
}

/// Whether the dotted `pattern` (`*` for any one segment, `""` for the root) names `path`.
pub fn matches_path(pattern: &str, path: &[String]) -> bool {
    let segments: Vec<&str> = pattern.split('.').filter(|s| !s.is_empty()).collect();
    segments.len() == path.len()
        && segments
            .iter()
            .zip(path)
            .all(|(pattern, segment)| *pattern == "*" || pattern == segment)
}

/// Docker's schema error for an unknown key; the root is `(root)`, as gojsonschema names it.
fn additional(path: &str, key: &str) -> ComposeError {
    let path = if path.is_empty() { "(root)" } else { path };
    ComposeError::Schema(format!("{path} Additional property {key} is not allowed"))
}

/// A key as text: YAML keys may be numbers or booleans (`80:`, `on:`).
fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

/// The characters docker's schema allows in service names: `[a-zA-Z0-9._-]`.
fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}
