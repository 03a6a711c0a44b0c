//! Durations as Go's `time.ParseDuration` reads them, which is how docker reads its
//! duration flags (`--cert-expiry 2160h0m0s`, `--dispatcher-heartbeat 5s`), and as Go's
//! `time.Duration.String` prints them, which is how docker shows them (`1m30s`).
//!
//! humantime reads the common forms too, but it also takes what Go refuses (`1 day`, `1M`
//! for a month) and refuses what Go takes (`-1s`, `1μs`), so the same flag could mean
//! something else here than under docker.

/// The largest magnitude a Go duration may have: `1<<63` nanoseconds, reachable only negated.
const LIMIT: u64 = 1 << 63;

/// The nanoseconds `text` stands for: an optional sign, then one or more decimal numbers
/// each followed by a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), as in `1h30m`, `1.5s`,
/// `-300ms`; or a bare `0`. Fractions below a nanosecond are dropped. Errors read as Go's.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote(text));
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, after) = split_digits(rest);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => split_digits(after),
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", quote(text)));
        }
        let (unit, after) = after.split_at(unit_len);
        let nanos = unit_nanos(unit).ok_or_else(|| {
            format!(
                "time: unknown unit {} in duration {}",
                quote(unit),
                quote(text)
            )
        })?;
        let value = leading_int(whole)
            .and_then(|whole| whole.checked_mul(nanos))
            .and_then(|value| value.checked_add(fraction_nanos(fraction, nanos)))
            .filter(|&value| value <= LIMIT)
            .ok_or_else(invalid)?;
        total = total
            .checked_add(value)
            .filter(|&total| total <= LIMIT)
            .ok_or_else(invalid)?;
        rest = after;
    }
    if negative {
        0i64.checked_sub_unsigned(total).ok_or_else(invalid)
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

/// `nanos` as Go's `time.Duration.String` prints it: `0s`, `1.5µs`, `300ms`, `10s`, `1m0s`,
/// `1h30m0.5s`, with a leading `-` when negative.
pub fn format_go_duration(nanos: i64) -> String {
    const SECOND: u64 = 1_000_000_000;
    let sign = if nanos < 0 { "-" } else { "" };
    let total = nanos.unsigned_abs();
    let text = match total {
        0 => return "0s".to_string(),
        1..1_000 => format!("{total}ns"),
        1_000..1_000_000 => format!("{}µs", decimal(total, 3)),
        1_000_000..SECOND => format!("{}ms", decimal(total, 6)),
        _ => {
            let seconds = decimal(total % (60 * SECOND), 9);
            let minutes = total / SECOND / 60;
            match (minutes / 60, minutes % 60) {
                (0, 0) => format!("{seconds}s"),
                (0, minutes) => format!("{minutes}m{seconds}s"),
                (hours, minutes) => format!("{hours}h{minutes}m{seconds}s"),
            }
        }
    };
    format!("{sign}{text}")
}

/// `value / 10^places` in decimal, without trailing zeros in the fraction (Go's `fmtFrac`).
fn decimal(value: u64, places: u32) -> String {
    let scale = 10u64.pow(places);
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = places as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Nanoseconds in one `unit`; Go takes both the micro sign and the Greek mu for micro.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// `text` split after its leading ASCII digits.
fn split_digits(text: &str) -> (&str, &str) {
    text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    )
}

/// The value of a run of digits, `None` past [`LIMIT`] (Go's `leadingInt` overflow).
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |value, digit| {
        value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))
            .filter(|&value| value <= LIMIT)
    })
}

/// The nanoseconds the digits after a decimal point add to `unit_nanos`, computed as Go
/// does (through `f64`, which is exact to the nanosecond up to an hour), with the digits
/// past what fits in a `u64` ignored like Go's `leadingFraction` ignores them.
// Go's own float arithmetic, so that results agree to the nanosecond; truncation is intended.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn fraction_nanos(digits: &str, unit_nanos: u64) -> u64 {
    let mut value = 0u64;
    let mut scale = 1.0f64;
    for digit in digits.bytes() {
        let next = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .filter(|&v| v <= LIMIT);
        match next {
            Some(next) => {
                value = next;
                scale *= 10.0;
            }
            None => break,
        }
    }
    (value as f64 * (unit_nanos as f64 / scale)) as u64
}

/// `text` in double quotes the way Go's `time` package quotes it in errors: `"` and `\`
/// escaped, every byte of a control or non-ASCII character as `\xNN`.
fn quote(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn go_durations_docker_users_write() {
        assert_eq!(parse_go_duration("90s"), Ok(90 * SECOND));
        assert_eq!(parse_go_duration("5m"), Ok(300 * SECOND));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400 * SECOND));
        assert_eq!(parse_go_duration("2160h0m0s"), Ok(2_160 * 3_600 * SECOND));
        assert_eq!(parse_go_duration("0"), Ok(0));
    }

    #[test]
    fn every_unit_fractions_and_signs() {
        assert_eq!(parse_go_duration("7ns"), Ok(7));
        assert_eq!(parse_go_duration("7us"), Ok(7_000));
        assert_eq!(parse_go_duration("7µs"), Ok(7_000));
        assert_eq!(parse_go_duration("7μs"), Ok(7_000));
        assert_eq!(parse_go_duration("7ms"), Ok(7_000_000));
        assert_eq!(
            parse_go_duration("1h30m0.5s"),
            Ok(5_400 * SECOND + SECOND / 2)
        );
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400 * SECOND));
        assert_eq!(parse_go_duration(".5s"), Ok(SECOND / 2));
        assert_eq!(parse_go_duration("1.s"), Ok(SECOND));
        assert_eq!(parse_go_duration("1.0000000019s"), Ok(SECOND + 1));
        assert_eq!(parse_go_duration("0.1ns"), Ok(0));
        assert_eq!(parse_go_duration("-1m"), Ok(-60 * SECOND));
        assert_eq!(parse_go_duration("+1m"), Ok(60 * SECOND));
        assert_eq!(parse_go_duration("-0"), Ok(0));
        assert_eq!(parse_go_duration("1s1s"), Ok(2 * SECOND));
    }

    #[test]
    fn the_extremes_of_an_int64_of_nanoseconds() {
        assert_eq!(parse_go_duration("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(parse_go_duration("-9223372036854775808ns"), Ok(i64::MIN));
        assert_eq!(
            parse_go_duration("9223372036854775808ns"),
            Err("time: invalid duration \"9223372036854775808ns\"".into())
        );
        assert!(parse_go_duration("2562048h").is_err());
        assert!(parse_go_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(7), "7ns");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(300_000_000), "300ms");
        assert_eq!(format_go_duration(5 * SECOND), "5s");
        assert_eq!(format_go_duration(SECOND + SECOND / 2), "1.5s");
        assert_eq!(format_go_duration(60 * SECOND), "1m0s");
        assert_eq!(format_go_duration(90 * SECOND), "1m30s");
        assert_eq!(format_go_duration(5_400 * SECOND + SECOND / 2), "1h30m0.5s");
        assert_eq!(format_go_duration(2_160 * 3_600 * SECOND), "2160h0m0s");
        assert_eq!(format_go_duration(-90 * SECOND), "-1m30s");
        assert_eq!(format_go_duration(i64::MIN), "-2562047h47m16.854775808s");
        for text in ["1h30m0.5s", "1.5µs", "10s", "-1m30s"] {
            assert_eq!(format_go_duration(parse_go_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn invalid_durations_fail_with_go_messages() {
        let error = |text| parse_go_duration(text).unwrap_err();
        assert_eq!(error(""), "time: invalid duration \"\"");
        assert_eq!(error("-"), "time: invalid duration \"-\"");
        assert_eq!(error("h"), "time: invalid duration \"h\"");
        assert_eq!(error(".s"), "time: invalid duration \".s\"");
        assert_eq!(
            error("1h 30m"),
            "time: unknown unit \"h \" in duration \"1h 30m\""
        );
        assert_eq!(error("5"), "time: missing unit in duration \"5\"");
        assert_eq!(error("1h30"), "time: missing unit in duration \"1h30\"");
        assert_eq!(error("1d"), "time: unknown unit \"d\" in duration \"1d\"");
        assert_eq!(error("1M"), "time: unknown unit \"M\" in duration \"1M\"");
        assert_eq!(
            error("3é"),
            "time: unknown unit \"\\xc3\\xa9\" in duration \"3\\xc3\\xa9\""
        );
    }
}
