//! The small ways docker's CLI turns API values into text, shared by the commands.

use std::cmp::Ordering;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How many characters of an object ID docker shows when it shortens one.
const SHORT_ID: usize = 12;

/// Seconds from Go's zero time (0001-01-01) to the Unix epoch: how long ago docker says a
/// missing timestamp was.
const GO_ZERO_TIME_SECS: u64 = 62_135_596_800;

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

/// An object ID as docker shortens it for display (`stringid.TruncateID`): its first 12
/// characters.
pub fn short_id(id: &str) -> &str {
    id.char_indices()
        .nth(SHORT_ID)
        .map_or(id, |(end, _)| &id[..end])
}

/// `text` cut to `width` characters as docker's `formatter.Ellipsis` cuts it: the last one
/// kept becomes `…`.
pub fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    kept + "…"
}

/// A span as go-units' `HumanDuration` words it, which docker follows with " ago":
/// `Less than a second`, `5 seconds`, `About a minute`, `2 hours`, `3 weeks`...
pub fn human_duration(duration: Duration) -> String {
    // Go truncates seconds and minutes but rounds hours.
    let seconds = duration.as_secs();
    let minutes = seconds / 60;
    let hours = (duration.as_secs_f64() / 3600.0).round();
    // Display only: a span of hours is far below f64's exact-integer range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let hours = hours as u64;
    match () {
        () if seconds < 1 => "Less than a second".to_string(),
        () if seconds == 1 => "1 second".to_string(),
        () if seconds < 60 => format!("{seconds} seconds"),
        () if minutes == 1 => "About a minute".to_string(),
        () if minutes < 60 => format!("{minutes} minutes"),
        () if hours == 1 => "About an hour".to_string(),
        () if hours < 48 => format!("{hours} hours"),
        () if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        () if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        () if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        () => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// An API timestamp as its RFC 3339 text; through serde, because bollard's date type
/// depends on its cargo features.
pub fn date_text<T: Serialize>(date: Option<&T>) -> Option<String> {
    match serde_json::to_value(date) {
        Ok(serde_json::Value::String(text)) => Some(text),
        _ => None,
    }
}

/// How long before `now` the API timestamp `date` was; a missing or unreadable one counts
/// as Go's zero time, as docker reads it, and one in the future as no time at all.
pub fn elapsed<T: Serialize>(date: Option<&T>, now: SystemTime) -> Duration {
    let at = date_text(date).and_then(|text| humantime::parse_rfc3339_weak(&text).ok());
    match at {
        Some(at) => now.duration_since(at).unwrap_or_default(),
        None => {
            let since_epoch = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            since_epoch + Duration::from_secs(GO_ZERO_TIME_SECS)
        }
    }
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
    fn short_id_keeps_twelve_characters() {
        assert_eq!(short_id("7i3pk3g4p8e756gxsuz5mweal"), "7i3pk3g4p8e7");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn ellipsis_ends_cut_text_in_an_ellipsis() {
        assert_eq!(ellipsis("short", 30), "short");
        assert_eq!(ellipsis("exactly-five", 12), "exactly-five");
        assert_eq!(
            ellipsis("exec: \"x\": executable file not found", 10),
            "exec: \"x\"…"
        );
        assert_eq!(ellipsis("ééééé", 3), "éé…");
    }

    #[test]
    fn human_duration_words_spans_like_go_units() {
        let secs = Duration::from_secs;
        let cases = [
            (Duration::from_millis(400), "Less than a second"),
            (secs(1), "1 second"),
            (secs(5), "5 seconds"),
            (secs(59), "59 seconds"),
            (secs(60), "About a minute"),
            (secs(119), "About a minute"),
            (secs(120), "2 minutes"),
            (secs(59 * 60 + 59), "59 minutes"),
            (secs(3600), "About an hour"),
            (secs(5400), "2 hours"),
            (secs(47 * 3600), "47 hours"),
            (secs(48 * 3600), "2 days"),
            (secs(14 * 24 * 3600), "2 weeks"),
            (secs(60 * 24 * 3600), "2 months"),
            (secs(730 * 24 * 3600), "2 years"),
        ];
        for (span, words) in cases {
            assert_eq!(human_duration(span), words, "{span:?}");
        }
    }

    #[test]
    fn elapsed_reads_api_timestamps() {
        let now = humantime::parse_rfc3339("2026-11-25T02:03:20.5Z").unwrap();
        let date = Some("2026-11-25T02:03:17.954785349Z".to_string());
        let span = elapsed(date.as_ref(), now);
        assert_eq!(span.as_secs(), 2);
        let future = Some("2026-11-25T02:04:00Z".to_string());
        assert_eq!(elapsed(future.as_ref(), now), Duration::ZERO);
        // Go's zero time: docker says such a task changed state two thousand years ago.
        assert_eq!(human_duration(elapsed(None::<&String>, now)), "2027 years");
        assert_eq!(date_text(Some(&"x".to_string())), Some("x".into()));
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
