//! Flag values read as docker reads them: published ports in both syntaxes, shell words,
//! CPU counts, memory sizes, environment variables, labels, placement preferences and
//! filters. Errors are docker's where the user would see them.

use std::str::FromStr;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum as Protocol,
    EndpointPortConfigPublishModeEnum as PublishMode, NetworkAttachmentConfig,
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread,
};
use clap::builder::{PossibleValuesParser, TypedValueParser};

/// The port configurations one `--publish` stands for: one per port of a range.
#[derive(Clone, Debug, PartialEq)]
pub struct Ports(pub Vec<EndpointPortConfig>);

/// A command line split into words, as `--entrypoint` and `--args` take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words(pub Vec<String>);

/// A value parser taking one of `values`, as the API enum `T` spelled the same way (clap
/// lists the values in the help and the error, where docker leaves checking to the daemon).
pub fn api_enum<T>(values: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(values.iter().copied()).try_map(|value| value.parse::<T>())
}

/// A `--publish` value: `published=P,target=T[,protocol=tcp|udp|sctp][,mode=ingress|host]`,
/// or the short `[P:]T[/protocol]`, where P and T may be ranges (`8080-8081:80-81`).
pub fn publish(value: &str) -> Result<Ports, String> {
    if is_long_syntax(value) {
        long_publish(value).map(|port| Ports(vec![port]))
    } else {
        short_publish(value).map(Ports)
    }
}

/// Docker's test for the long syntax: `\w+=\w+` anywhere in the value.
fn is_long_syntax(value: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = value.as_bytes();
    (1..bytes.len().saturating_sub(1))
        .any(|at| bytes[at] == b'=' && word(bytes[at - 1]) && word(bytes[at + 1]))
}

fn long_publish(value: &str) -> Result<EndpointPortConfig, String> {
    let mut port = EndpointPortConfig {
        protocol: Some(Protocol::TCP),
        publish_mode: Some(PublishMode::INGRESS),
        ..Default::default()
    };
    for field in value.split(',') {
        // Docker lower-cases the whole field, value included.
        let field = field.to_lowercase();
        let (key, value) = field
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| format!("invalid field: {field}"))?;
        match key {
            "protocol" => match value {
                "tcp" | "udp" | "sctp" => port.protocol = value.parse().ok(),
                _ => return Err(format!("invalid protocol value '{value}'")),
            },
            "mode" => match value {
                "ingress" | "host" => port.publish_mode = value.parse().ok(),
                _ => {
                    return Err(format!(
                        "invalid publish mode value ({value}): must be either 'ingress' or 'host'"
                    ));
                }
            },
            "target" => port.target_port = Some(unsigned::<u16>(value)?.into()),
            "published" => port.published_port = Some(unsigned::<u16>(value)?.into()),
            _ => return Err(format!("invalid field key: {key}")),
        }
    }
    if port.target_port.unwrap_or(0) == 0 {
        return Err("missing mandatory field 'target'".into());
    }
    Ok(port)
}

/// The short syntax, as docker's `nat.ParsePortSpec` reads it: a host range paired port by
/// port with an equally long container range, or spread over a single container port.
fn short_publish(value: &str) -> Result<Vec<EndpointPortConfig>, String> {
    let (host, container) = match value.rsplit_once(':') {
        Some((rest, _)) if rest.contains(':') => return Err("hostip is not supported".into()),
        Some((host, container)) => (host, container),
        None => ("", value),
    };
    let (container, protocol) = match container.split_once('/') {
        Some((port, "")) => (port, "tcp".to_string()),
        Some((port, protocol)) => (port, protocol.to_lowercase()),
        None => (container, "tcp".to_string()),
    };
    if container.is_empty() {
        return Err(format!("no port specified: {value}<empty>"));
    }
    let targets = port_range(container).ok_or(format!("invalid containerPort: {container}"))?;
    let published = if host.is_empty() {
        (0, 0)
    } else {
        port_range(host).ok_or(format!("invalid hostPort: {host}"))?
    };
    let protocol: Protocol = match protocol.as_str() {
        "tcp" | "udp" | "sctp" => protocol.parse()?,
        _ => return Err(format!("invalid proto: {protocol}")),
    };
    let single_target = targets.0 == targets.1;
    if !host.is_empty() && targets.1 - targets.0 != published.1 - published.0 && !single_target {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container} and {host}"
        ));
    }
    let pairs: Vec<(u16, u16)> = if single_target {
        (published.0..=published.1)
            .map(|p| (p, targets.0))
            .collect()
    } else {
        let offsets = 0..=targets.1 - targets.0;
        let published = |offset| {
            if host.is_empty() {
                0
            } else {
                published.0 + offset
            }
        };
        offsets.map(|o| (published(o), targets.0 + o)).collect()
    };
    let config = |(published, target): (u16, u16)| EndpointPortConfig {
        protocol: Some(protocol),
        target_port: Some(target.into()),
        published_port: (published != 0).then_some(published.into()),
        publish_mode: Some(PublishMode::INGRESS),
        ..Default::default()
    };
    Ok(pairs.into_iter().map(config).collect())
}

/// `80` or `80-90` as its first and last port.
fn port_range(text: &str) -> Option<(u16, u16)> {
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then_some((start, end))
}

/// A decimal number without sign, failing as Go's `strconv.ParseUint` does, which is how
/// docker reads ports and counts.
pub fn unsigned<T: TryFrom<u64>>(value: &str) -> Result<T, String> {
    let error = |reason| format!("strconv.ParseUint: parsing {value:?}: {reason}");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error("invalid syntax"));
    }
    let number: u64 = value.parse().map_err(|_| error("value out of range"))?;
    T::try_from(number).map_err(|_| error("value out of range"))
}

/// Words split as a POSIX shell would (google/shlex): quotes group, backslashes escape, and
/// `#` at the start of a word comments out the rest of the line.
pub fn shell_words(value: &str) -> Result<Words, String> {
    const OPEN_QUOTE: &str = "EOF found when expecting closing quote";
    const OPEN_ESCAPE: &str = "EOF found after escape character";
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => words.extend(word.take()),
            '#' if word.is_none() => {
                chars.by_ref().find(|&c| c == '\n');
            }
            '\\' => word
                .get_or_insert_default()
                .push(chars.next().ok_or(OPEN_ESCAPE)?),
            '\'' => {
                let word = word.get_or_insert_default();
                loop {
                    match chars.next().ok_or(OPEN_QUOTE)? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                let word = word.get_or_insert_default();
                loop {
                    match chars.next().ok_or(OPEN_QUOTE)? {
                        '"' => break,
                        '\\' => word.push(chars.next().ok_or(OPEN_ESCAPE)?),
                        c => word.push(c),
                    }
                }
            }
            c => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    Ok(Words(words))
}

/// A CPU count (`1.5`) in billionths of a CPU, exact as docker's `big.Rat` arithmetic is.
pub fn nano_cpus(value: &str) -> Result<i64, String> {
    let invalid = || format!("failed to parse {value} as a rational number");
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(invalid());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 9 {
        return Err("value is too precise".into());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    let fraction: i64 = format!("{fraction:0<9}").parse().map_err(|_| invalid())?;
    whole
        .checked_mul(1_000_000_000)
        .and_then(|nanos| nanos.checked_add(fraction))
        .ok_or_else(invalid)
}

/// A memory size as go-units' `RAMInBytes` reads it: a number, then optionally a space and
/// `b`, or `k`, `m`, `g`, `t`, `p` (powers of 1024) followed by nothing, `b` or `ib`, in any
/// case (`512m`, `1.5GiB`, `64 MB`, `1024`).
pub fn ram_bytes(value: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{value}'");
    let split = value
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(invalid)?;
    let (number, suffix) = match value.as_bytes()[split] {
        b' ' => (&value[..split], &value[split + 1..]),
        _ => (&value[..=split], &value[split + 1..]),
    };
    let size: f64 = number
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {number:?}: invalid syntax"))?;
    if size < 0.0 {
        return Err(invalid());
    }
    let suffix = suffix.to_lowercase();
    let bad_suffix = || format!("invalid suffix: '{suffix}'");
    let scale = match suffix.as_bytes() {
        [] | [b'b'] => 1,
        [unit, rest @ ..] if suffix.len() <= 3 && matches!(rest, [] | [b'b'] | [b'i', b'b']) => {
            let power = b"kmgtp"
                .iter()
                .position(|u| u == unit)
                .ok_or_else(bad_suffix)?;
            1u64 << (10 * (power + 1))
        }
        _ => return Err(bad_suffix()),
    };
    // Go converts the product to an integer by truncation, as `as` does (saturating).
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    Ok((size * scale as f64) as i64)
}

/// An `--env` value: `KEY=VALUE`, or `KEY` alone for the variable of that name in this
/// environment (or for `KEY` as given, when there is none), as docker reads it.
pub fn env(value: &str) -> Result<String, String> {
    let (key, assigned) = match value.split_once('=') {
        Some((key, _)) => (key, true),
        None => (value, false),
    };
    if key.is_empty() {
        return Err(format!("invalid environment variable: {value}"));
    }
    match std::env::var(key) {
        Ok(found) if !assigned => Ok(format!("{key}={found}")),
        _ => Ok(value.to_string()),
    }
}

/// A `--label` value: `KEY=VALUE` or `KEY`, whose key is neither empty nor spaced.
pub fn label(value: &str) -> Result<String, String> {
    let key = value.split_once('=').map_or(value, |(key, _)| key).trim();
    if key.is_empty() {
        return Err(format!("invalid label '{value}': empty name"));
    }
    if key.contains(char::is_whitespace) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(value.to_string())
}

/// A `--placement-pref` value: `spread=<descriptor>`, the only strategy there is.
pub fn placement_pref(value: &str) -> Result<TaskSpecPlacementPreferences, String> {
    match value.split_once('=') {
        Some(("spread", descriptor)) => Ok(TaskSpecPlacementPreferences {
            spread: Some(TaskSpecPlacementSpread {
                spread_descriptor: Some(descriptor.to_string()),
            }),
        }),
        Some((strategy, _)) if !strategy.is_empty() => Err(format!(
            "unsupported placement preference {strategy} (only spread is supported)"
        )),
        _ => Err("placement preference must be of the format \"<strategy>=<arg>\"".into()),
    }
}

/// A `--filter` value: `name=value`, the name trimmed and lower-cased, the value trimmed.
pub fn filter(value: &str) -> Result<(String, String), String> {
    let (name, value) = value
        .split_once('=')
        .ok_or("bad format of filter (expected name=value)")?;
    Ok((name.trim().to_lowercase(), value.trim().to_string()))
}

/// A `--network` value: a network's name or ID, or `name=NET[,alias=A]...[,driver-opt=K=V]...`.
pub fn network(value: &str) -> Result<NetworkAttachmentConfig, String> {
    if !value.contains('=') {
        return Ok(NetworkAttachmentConfig {
            target: Some(value.to_string()),
            ..Default::default()
        });
    }
    let mut attachment = NetworkAttachmentConfig::default();
    for field in value.split(',') {
        let (key, field_value) = field
            .split_once('=')
            .ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"))?;
        match key.trim().to_lowercase().as_str() {
            "name" => attachment.target = Some(field_value.to_string()),
            "alias" => attachment
                .aliases
                .get_or_insert_with(Vec::new)
                .push(field_value.to_string()),
            "driver-opt" => {
                let (k, v) = field_value.split_once('=').ok_or_else(|| {
                    format!("invalid key value pair format in driver options: {field_value}")
                })?;
                attachment
                    .driver_opts
                    .get_or_insert_with(Default::default)
                    .insert(k.to_string(), v.to_string());
            }
            _ => return Err(format!("invalid field key {key}")),
        }
    }
    if attachment.target.as_deref().is_none_or(str::is_empty) {
        return Err(format!("network name/id is not specified: {value}"));
    }
    Ok(attachment)
}

/// A `service scale` argument, `SERVICE=REPLICAS`; the count is read later, so that a bad
/// one only fails its own service, as with docker.
pub fn scale(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((service, replicas)) if !service.is_empty() && !replicas.is_empty() => {
            Ok((service.to_string(), replicas.to_string()))
        }
        _ => Err(format!("invalid scale specifier '{value}'")),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
