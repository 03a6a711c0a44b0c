//! A container's logs as task log lines: the engine's frames, asked for with timestamps, each
//! `<RFC 3339 time> <line>\n`.

use std::time::{SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions as DockerLogsOptions;

use crate::exec::{LogLine, LogOptions, LogStream};

/// The engine's query for `options`, following new lines or not.
pub fn query(options: &LogOptions, follow: bool) -> DockerLogsOptions {
    let since = options.since.map_or(0, |since| {
        let secs = since
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // Whole seconds only: lines of the second before are dropped by `admits` below.
        i32::try_from(secs).unwrap_or(i32::MAX)
    });
    DockerLogsOptions {
        follow,
        stdout: true,
        stderr: true,
        since,
        until: 0,
        timestamps: true,
        tail: options.tail.map_or("all".into(), |n| n.to_string()),
    }
}

/// The line a frame carries, if it is a line of the program's output; a frame without a
/// readable time is kept, timed now.
pub fn line(frame: LogOutput) -> Option<LogLine> {
    let (stream, message) = match frame {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (LogStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    let text = String::from_utf8_lossy(&message);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let (stamp, rest) = text.split_once(' ').unwrap_or((text, ""));
    let (time, line) = match humantime::parse_rfc3339_weak(stamp) {
        Ok(time) => (time, rest),
        Err(_) => (SystemTime::now(), text),
    };
    Some(LogLine {
        time,
        stream,
        line: line.to_string(),
    })
}

/// Whether `line` is one `options` asks for (the engine's `since` has whole seconds only).
pub fn admits(options: &LogOptions, line: &LogLine) -> bool {
    options.since.is_none_or(|since| line.time >= since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn out(text: &str) -> LogOutput {
        LogOutput::StdOut {
            message: text.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn frames_become_timed_lines() {
        let line = line(out("2026-12-07T10:47:12.723728492Z hello world\n")).unwrap();
        assert_eq!(line.line, "hello world");
        assert_eq!(line.stream, LogStream::Stdout);
        let at = line.time.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(at.subsec_nanos(), 723_728_492);

        let err = LogOutput::StdErr {
            message: b"2026-12-07T10:47:12Z \n"[..].to_vec().into(),
        };
        let empty = super::line(err).unwrap();
        assert_eq!((empty.stream, empty.line.as_str()), (LogStream::Stderr, ""));

        let untimed = super::line(out("no time here\n")).unwrap();
        assert_eq!(untimed.line, "no time here");
        assert!(
            super::line(LogOutput::StdIn {
                message: "x".into()
            })
            .is_none()
        );
    }

    #[test]
    fn the_query_asks_for_timestamps_and_the_tail() {
        let since = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let options = LogOptions {
            tail: Some(5),
            since: Some(since),
        };
        let q = query(&options, true);
        assert!(q.follow && q.timestamps && q.stdout && q.stderr);
        assert_eq!((q.tail.as_str(), q.since), ("5", 1_700_000_000));
        assert_eq!(query(&LogOptions::default(), false).tail, "all");
        let early = LogLine {
            time: since - Duration::from_millis(1),
            stream: LogStream::Stdout,
            line: String::new(),
        };
        assert!(!admits(&options, &early));
    }
}
