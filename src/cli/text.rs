//! The small ways docker's CLI turns API values into text, shared by the commands.

use std::cmp::Ordering;

/// Docker's `formatter.PrettyPrint` for an enum value: first letter upper-cased
/// (`ready` -> `Ready`, `reachable` -> `Reachable`, `` -> ``).
pub fn capitalize(value: &str) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// [`capitalize`] for an optional API enum, empty when absent (`Some(NodeState::READY)` -> `Ready`).
pub fn pretty_enum<T: std::fmt::Display>(value: Option<T>) -> String {
    value
        .map(|v| capitalize(&v.to_string()))
        .unwrap_or_default()
}

/// A byte count as go-units' `BytesSize` prints it: binary units, four significant digits
/// (`7.775GiB`, `512MiB`, `0B`).
pub fn bytes_size(bytes: i64) -> String {
    // An i64 stays below 8 EiB, so go-units' larger units are never reached.
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    // Display only: f64's 52-bit mantissa is far more precise than four digits.
    #[allow(clippy::cast_precision_loss)]
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{}{}", four_significant_digits(size), UNITS[unit])
}

/// Go's `%.4g` for a number below 10000: rounded to four significant digits, trailing
/// zeros dropped.
fn four_significant_digits(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    // Rounding in exponent form first tells the exponent after rounding (999.97 -> 1.000e3).
    let rounded = format!("{value:.3e}");
    let exponent: i32 = rounded
        .split_once('e')
        .and_then(|(_, exponent)| exponent.parse().ok())
        .expect("{:e} ends in an integer exponent");
    let decimals = usize::try_from(3 - exponent).unwrap_or(0);
    trim_fraction(&format!("{value:.decimals$}")).to_string()
}

/// Drops trailing zeros after a decimal point, and the point if nothing follows it.
fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// An RFC 3339 timestamp as Go's `time.Time.String()` prints it, which is what docker shows
/// for dates in its pretty output: `2024-05-01T10:11:12.5Z` -> `2024-05-01 10:11:12.5 +0000 UTC`.
/// Text that is not such a timestamp is returned unchanged.
pub fn go_time(rfc3339: &str) -> String {
    let Some((date, rest)) = rfc3339.split_once('T') else {
        return rfc3339.to_string();
    };
    let Some(zone_at) = rest.find(['Z', 'z', '+', '-']) else {
        return rfc3339.to_string();
    };
    let (clock, zone) = rest.split_at(zone_at);
    let clock = trim_fraction(clock);
    let zone = match zone {
        "Z" | "z" => "+0000 UTC".to_string(),
        offset => {
            // Go names a zone it only knows by offset after the offset itself.
            let offset = offset.replace(':', "");
            format!("{offset} {offset}")
        }
    };
    format!("{date} {clock} {zone}")
}

/// Docker's order for names (fvbommel/sortorder `NaturalLess`): runs of digits compare as
/// numbers, so `node2` sorts before `node10`; digits sort before other characters.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        match (a[i].is_ascii_digit(), b[i].is_ascii_digit()) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) if a[i] != b[i] => return a[i].cmp(&b[i]),
            (false, false) => i += 1,
            (true, true) => {
                let (zeros_a, digits_a) = number_at(a, i);
                let (zeros_b, digits_b) = number_at(b, i);
                let by_value = digits_a
                    .len()
                    .cmp(&digits_b.len())
                    .then(digits_a.cmp(digits_b));
                // Equal numbers: fewer leading zeros first ("2" < "02").
                let order = by_value.then(zeros_a.cmp(&zeros_b));
                if order != Ordering::Equal {
                    return order;
                }
                i += zeros_a + digits_a.len();
            }
        }
    }
    a.len().cmp(&b.len())
}

/// The number starting at `start`: how many leading zeros it has, and its other digits.
fn number_at(text: &[u8], start: usize) -> (usize, &[u8]) {
    let zeros = text[start..].iter().take_while(|&&c| c == b'0').count();
    let from = start + zeros;
    let digits = text[from..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    (zeros, &text[from..from + digits])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitalize_upper_cases_only_the_first_letter() {
        assert_eq!(capitalize("ready"), "Ready");
        assert_eq!(capitalize("needs rotation"), "Needs rotation");
        assert_eq!(capitalize(""), "");
        assert_eq!(
            pretty_enum(Some(bollard::models::NodeState::READY)),
            "Ready"
        );
        assert_eq!(pretty_enum(None::<bollard::models::NodeState>), "");
    }

    #[test]
    fn bytes_size_matches_go_units() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(512), "512B");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(8_348_520_448), "7.775GiB");
        assert_eq!(bytes_size(1_048_575), "1024KiB");
        assert_eq!(bytes_size(i64::MAX), "8EiB");
    }

    #[test]
    fn go_time_prints_like_time_string() {
        assert_eq!(
            go_time("2017-05-03T18:27:35.123456789Z"),
            "2017-05-03 18:27:35.123456789 +0000 UTC"
        );
        assert_eq!(
            go_time("2017-05-03T18:27:35.500Z"),
            "2017-05-03 18:27:35.5 +0000 UTC"
        );
        assert_eq!(
            go_time("2017-05-03T18:27:35Z"),
            "2017-05-03 18:27:35 +0000 UTC"
        );
        assert_eq!(
            go_time("2017-05-03T18:27:35+02:00"),
            "2017-05-03 18:27:35 +0200 +0200"
        );
        assert_eq!(go_time("yesterday"), "yesterday");
    }

    #[test]
    fn natural_cmp_compares_digit_runs_as_numbers() {
        let mut names = vec![
            "node10", "node2", "node02", "node1", "manager", "1node", "node",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "1node", "manager", "node", "node1", "node2", "node02", "node10"
            ]
        );
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
    }
}
