//! A task's output, kept for `service logs` in the task's `log.jsonl`: one JSON object per line,
//! `{"time": RFC 3339 with nanoseconds, "stream": "stdout"|"stderr", "line": "..."}`.
//!
//! The shim writes it (`LogWriter`, fed by a `LineSplitter` per stream); the executor reads it
//! (`read`) and follows it (`follow`).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::time::SystemTime;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::taskdir::rfc3339;

/// Longest line kept whole; a longer one is split into several (as docker does at 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Which of the program's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a task's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the shim read the line.
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// Where it came from.
    pub stream: LogStream,
    /// The line, without its newline; bytes that are not UTF-8 are replaced by U+FFFD.
    pub line: String,
}

/// Which lines to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last this many lines (of those `since` lets through).
    pub tail: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
}

impl LogOptions {
    fn admits(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|since| line.time >= since)
    }
}

/// The borrowed form of [`LogLine`] the shim serializes, so that writing a line allocates
/// nothing unless the line is not valid UTF-8.
#[derive(Serialize)]
struct Entry<'a> {
    #[serde(with = "rfc3339")]
    time: SystemTime,
    stream: LogStream,
    line: Cow<'a, str>,
}

/// Appends lines to `log.jsonl`.
pub(crate) struct LogWriter {
    out: BufWriter<File>,
}

impl LogWriter {
    pub(crate) fn new(file: File) -> Self {
        LogWriter {
            out: BufWriter::with_capacity(64 * 1024, file),
        }
    }

    /// Buffers one line; [`LogWriter::flush`] makes it visible to readers.
    pub(crate) fn line(
        &mut self,
        time: SystemTime,
        stream: LogStream,
        line: &[u8],
    ) -> io::Result<()> {
        let entry = Entry {
            time,
            stream,
            line: String::from_utf8_lossy(line),
        };
        serde_json::to_writer(&mut self.out, &entry)?;
        self.out.write_all(b"\n")
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and makes the log durable, so that an `exit.json` written after it never
    /// describes a task whose last lines a crash lost.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// Cuts one stream's bytes into lines: on '\n', and at [`MAX_LINE`] bytes for longer lines.
#[derive(Default)]
pub(crate) struct LineSplitter {
    /// The start of a line whose end has not been read yet.
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes just read; `emit` gets each completed line (without its '\n').
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        mut emit: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&data[..newline], &data[newline + 1..]);
            if self.pending.is_empty() {
                emit_long(line, &mut emit)?;
            } else {
                self.pending.extend_from_slice(line);
                emit_long(&self.pending, &mut emit)?;
                self.pending.clear();
            }
            data = rest;
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() > MAX_LINE {
            let cut = split_point(&self.pending);
            emit(&self.pending[..cut])?;
            self.pending.drain(..cut);
        }
        Ok(())
    }

    /// Emits a partial last line, at exit.
    pub(crate) fn finish(
        &mut self,
        mut emit: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if !self.pending.is_empty() {
            emit(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// Emits one complete line, in [`MAX_LINE`] pieces if it is longer.
fn emit_long(mut line: &[u8], emit: &mut impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    while line.len() > MAX_LINE {
        let cut = split_point(line);
        emit(&line[..cut])?;
        line = &line[cut..];
    }
    emit(line)
}

/// Where to cut a too-long line: at [`MAX_LINE`], moved back to a UTF-8 character boundary so
/// that neither half gets a replacement character (unless the text is not UTF-8 anyway).
fn split_point(line: &[u8]) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    (MAX_LINE - 3..=MAX_LINE)
        .rev()
        .find(|&i| !is_continuation(line[i]))
        .unwrap_or(MAX_LINE)
}

/// Reads complete lines from a log file as it grows.
pub(crate) struct LogReader {
    file: Option<File>,
    /// Bytes read past the last complete line (a line being written right now).
    partial: Vec<u8>,
}

impl LogReader {
    pub(crate) fn new() -> Self {
        LogReader {
            file: None,
            partial: Vec::new(),
        }
    }

    /// Reads the lines added since the last call (all of them on the first call); `path` may
    /// not exist yet.
    pub(crate) fn read_new(&mut self, path: &Path) -> io::Result<Vec<LogLine>> {
        if self.file.is_none() {
            match File::open(path) {
                Ok(file) => self.file = Some(file),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        let start = self.partial.len();
        file.read_to_end(&mut self.partial)?;
        if self.partial.len() == start {
            return Ok(Vec::new());
        }
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let lines = self.partial[..end]
            .split(|&b| b == b'\n')
            .map(|line| {
                serde_json::from_slice(line).map_err(|e| {
                    io::Error::new(ErrorKind::InvalidData, format!("{}: {e}", path.display()))
                })
            })
            .collect::<io::Result<Vec<LogLine>>>()?;
        self.partial.drain(..=end);
        Ok(lines)
    }
}

/// The lines of a log file that `options` selects.
pub(crate) fn read(path: &Path, options: &LogOptions) -> io::Result<Vec<LogLine>> {
    let lines = LogReader::new().read_new(path)?;
    Ok(select(lines, options))
}

fn select(lines: Vec<LogLine>, options: &LogOptions) -> Vec<LogLine> {
    let admitted = lines.into_iter().filter(|line| options.admits(line));
    match options.tail {
        Some(tail) => {
            let mut last = VecDeque::with_capacity(tail.min(4096));
            for line in admitted {
                if last.len() == tail {
                    last.pop_front();
                }
                if tail > 0 {
                    last.push_back(line);
                }
            }
            last.into()
        }
        None => admitted.collect(),
    }
}

/// Sends the lines of the log in `dir` that `options` selects, then every new line as it is
/// written, until `exited` resolves (the task's exit is recorded only after its last line is
/// written, so a final read then gets everything) or the receiver goes away.
pub(crate) async fn follow(
    dir: &Path,
    log: &Path,
    options: LogOptions,
    exited: impl Future<Output = ()>,
    tx: mpsc::Sender<LogLine>,
) -> io::Result<()> {
    // Watch before the first read, so no write falls between the two unnoticed.
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    // The directory, not the file: the log may not exist yet.
    inotify.add_watch(dir, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE)?;
    let inotify = AsyncFd::new(Watch(inotify))?;

    let mut reader = LogReader::new();
    let first = select(reader.read_new(log)?, &options);
    if !send(&tx, first, &options).await {
        return Ok(());
    }
    tokio::pin!(exited);
    loop {
        tokio::select! {
            () = &mut exited => {
                send(&tx, reader.read_new(log)?, &options).await;
                return Ok(());
            }
            ready = inotify.readable() => {
                let mut guard = ready?;
                // Only that something changed matters, not what: drain the events.
                loop {
                    match guard.get_inner().0.read_events() {
                        Ok(_) => {}
                        Err(nix::errno::Errno::EAGAIN) => break guard.clear_ready(),
                        Err(e) => return Err(e.into()),
                    }
                }
                if !send(&tx, reader.read_new(log)?, &options).await {
                    return Ok(());
                }
            }
            () = tx.closed() => return Ok(()),
        }
    }
}

/// Sends the admitted lines; false once the receiver is gone.
async fn send(tx: &mpsc::Sender<LogLine>, lines: Vec<LogLine>, options: &LogOptions) -> bool {
    for line in lines.into_iter().filter(|line| options.admits(line)) {
        if tx.send(line).await.is_err() {
            return false;
        }
    }
    true
}

/// An inotify instance as tokio's `AsyncFd` wants it.
struct Watch(Inotify);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter
                .feed(chunk, |line| {
                    lines.push(line.to_vec());
                    Ok(())
                })
                .unwrap();
        }
        splitter
            .finish(|line| {
                lines.push(line.to_vec());
                Ok(())
            })
            .unwrap();
        lines
    }

    #[test]
    fn splits_on_newlines_across_reads_and_flushes_the_partial_last_line() {
        let lines = split(&[b"one\ntw", b"o\n\nthr", b"ee"]);
        assert_eq!(lines, [&b"one"[..], b"two", b"", b"three"]);
    }

    #[test]
    fn splits_long_lines_at_16k_on_a_character_boundary() {
        let long = vec![b'a'; MAX_LINE * 2 + 5];
        let lines = split(&[&long, b"\n"]);
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 5]
        );

        // A 3-byte character straddling the limit moves whole to the next line.
        let mut text = vec![b'a'; MAX_LINE - 1];
        text.extend_from_slice("€".as_bytes());
        text.push(b'\n');
        let lines = split(&[&text]);
        assert_eq!(lines[0].len(), MAX_LINE - 1);
        assert_eq!(lines[1], "€".as_bytes());
    }

    #[test]
    fn writes_and_reads_back_with_tail_and_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut writer = LogWriter::new(File::create(&path).unwrap());
        let t0 =
            SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let t1 = t0 + std::time::Duration::from_secs(1);
        writer.line(t0, LogStream::Stdout, b"first").unwrap();
        writer
            .line(t1, LogStream::Stderr, b"second \xff\"q\"")
            .unwrap();
        writer.line(t1, LogStream::Stdout, b"third").unwrap();
        writer.finish().unwrap();

        let all = read(&path, &LogOptions::default()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].time, t0);
        assert_eq!(all[1].stream, LogStream::Stderr);
        assert_eq!(all[1].line, "second \u{fffd}\"q\"");
        let tail = read(
            &path,
            &LogOptions {
                tail: Some(2),
                since: None,
            },
        )
        .unwrap();
        assert_eq!(tail, all[1..]);
        let since = read(
            &path,
            &LogOptions {
                tail: None,
                since: Some(t1),
            },
        )
        .unwrap();
        assert_eq!(since, all[1..]);
        let none = read(
            &path,
            &LogOptions {
                tail: Some(0),
                since: None,
            },
        )
        .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn a_reader_waits_for_a_line_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut reader = LogReader::new();
        assert!(reader.read_new(&path).unwrap().is_empty());
        let mut file = File::create(&path).unwrap();
        file.write_all(br#"{"time":"2024-01-01T00:00:00.000000001Z","stream":"stdout","#)
            .unwrap();
        assert!(reader.read_new(&path).unwrap().is_empty());
        file.write_all(b"\"line\":\"x\"}\n").unwrap();
        let lines = reader.read_new(&path).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].line, "x");
    }
}
