//! A task's directory: the files through which the shim (which writes them) and the executor
//! (which reads them, in this daemon or in the next one after a restart) share a task's state.
//!
//! ```text
//! spec.json     the LaunchSpec, written by the executor before the shim starts
//! shim.log      the shim's own diagnostics (its stdout and stderr)
//! started.json  the shim's and then also the program's process identities
//! pid           the program's host PID, for operators (`nsenter -t $(cat pid) -n`)
//! log.jsonl     the program's output, one JSON object per line (see `logs`)
//! exit.json     how the program ended; written last, so its presence means "done"
//! resolv.conf   the task's /etc/resolv.conf, when it is on an overlay (see `resolv`)
//! volume-N      the task's anonymous volumes, one per such mount (see `mounts`)
//! ```

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::ExitStatus;
use crate::fsutil::write_atomic;

/// The paths of one task's files.
#[derive(Debug, Clone)]
pub(crate) struct TaskDir {
    path: PathBuf,
}

impl TaskDir {
    pub(crate) fn new(path: PathBuf) -> Self {
        TaskDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn spec(&self) -> PathBuf {
        self.path.join("spec.json")
    }

    pub(crate) fn shim_log(&self) -> PathBuf {
        self.path.join("shim.log")
    }

    pub(crate) fn started(&self) -> PathBuf {
        self.path.join("started.json")
    }

    pub(crate) fn pid(&self) -> PathBuf {
        self.path.join("pid")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.path.join("log.jsonl")
    }

    pub(crate) fn resolv_conf(&self) -> PathBuf {
        self.path.join(super::resolv::FILE)
    }

    pub(crate) fn exit(&self) -> PathBuf {
        self.path.join("exit.json")
    }

    /// Reads `exit.json`, if the task has exited.
    pub(crate) fn read_exit(&self) -> io::Result<Option<ExitStatus>> {
        read_json(&self.exit())
    }

    /// Records how the task ended. Atomic, so a reader never sees half a record.
    pub(crate) fn write_exit(&self, status: &ExitStatus) -> io::Result<()> {
        write_json(&self.exit(), status)
    }

    /// Reads `spec.json`, if the executor has written it.
    pub(crate) fn read_spec(&self) -> io::Result<Option<super::LaunchSpec>> {
        read_json(&self.spec())
    }

    /// Reads `started.json`, if the shim has got that far.
    pub(crate) fn read_started(&self) -> io::Result<Option<Started>> {
        read_json(&self.started())
    }

    pub(crate) fn write_started(&self, started: &Started) -> io::Result<()> {
        write_json(&self.started(), started)
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(ErrorKind::InvalidData, format!("{}: {e}", path.display()))
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value)?;
    write_atomic(path, &bytes, 0o600)
}

/// Who is running a task, as recorded by its shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Started {
    /// The shim itself, recorded first so a task whose program never started can still be told
    /// apart from one whose shim died.
    pub(crate) shim: ProcessId,
    /// The program (PID 1 of the task's PID namespace), once forked.
    pub(crate) program: Option<ProcessId>,
}

/// A process, identified so that a recycled PID is not mistaken for it: the PID plus the
/// start time (in clock ticks since boot, field 22 of `/proc/<pid>/stat`), which no other
/// process holding that PID later can share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
}

impl ProcessId {
    /// The identity of the process that holds `pid` now.
    pub(crate) fn of(pid: u32) -> io::Result<Self> {
        let (_, start_time) = stat(pid)?;
        Ok(ProcessId { pid, start_time })
    }

    /// Whether this very process still runs (a zombie no longer does).
    pub(crate) fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Ok((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// A pidfd for this process, or `None` if it is gone (reaped, or its PID reused).
    pub(crate) fn pidfd(&self) -> Option<PidFd> {
        // Open first, check second: if the PID holds our process after the pidfd was opened,
        // it held it before too (our process started before we recorded it), so the pidfd is
        // ours.
        let fd = PidFd::open(self.pid).ok()?;
        matches!(stat(self.pid), Ok((_, start)) if start == self.start_time).then_some(fd)
    }
}

/// The state letter and start time of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> io::Result<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may itself hold spaces and ')', so
    // fields are counted from the last ')'.
    let invalid = || {
        io::Error::new(
            ErrorKind::InvalidData,
            format!("unparsable /proc/{pid}/stat"),
        )
    };
    let rest = text.rsplit_once(')').ok_or_else(invalid)?.1;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|s| s.chars().next())
        .ok_or_else(invalid)?;
    // `rest` starts at field 3 (state); the start time is field 22.
    let start = fields
        .nth(22 - 4)
        .and_then(|s| s.parse().ok())
        .ok_or_else(invalid)?;
    Ok((state, start))
}

/// A process file descriptor: signals sent through it cannot reach a process that merely
/// inherited the PID, and it turns readable when the process exits (no polling).
#[derive(Debug)]
pub(crate) struct PidFd(OwnedFd);

impl PidFd {
    fn open(pid: u32) -> io::Result<Self> {
        let pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from(ErrorKind::InvalidInput))?;
        // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    /// Sends `signal`; a process that has already exited is not an error.
    pub(crate) fn signal(&self, signal: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal reads only its arguments; a null siginfo means "as kill(2)".
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        match rc {
            0 => Ok(()),
            _ => match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Resolves once the process has exited.
    pub(crate) async fn exited(self) -> io::Result<()> {
        let fd = AsyncFd::with_interest(self.0, Interest::READABLE)?;
        let _ready = fd.readable().await?;
        Ok(())
    }
}

/// Serde for timestamps as RFC 3339 with nanoseconds, the format of docker's log timestamps.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_nanos(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_this_process_and_not_a_different_start_time() {
        let me = ProcessId::of(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert!(me.pidfd().is_some());
        let impostor = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
        assert!(impostor.pidfd().is_none());
    }
}
