//! `shoal shim --dir TASKDIR`: the per-task supervisor of the process executor, in the manner of
//! containerd-shim. It outlives the daemon, so a task keeps running, keeps being logged and
//! gets its exit code recorded across a daemon restart.
//!
//! The daemon runs `shoal shim`, which forks the supervisor and exits once the task has
//! started (or failed to), so the daemon learns the outcome and has no long-lived child to reap.
//! The supervisor, in a session of its own so the daemon's death does not touch it:
//! 1. records itself in `started.json`;
//! 2. unshares a PID namespace and forks the program's process, PID 1 there, which gets its
//!    own network, UTS and mount namespaces and execs the program (see [`super::launch`]);
//!    when PID 1 exits the kernel kills whatever it left behind, so a task leaves no orphans;
//! 3. records the program in `pid` and `started.json`;
//! 4. copies the program's stdout and stderr to `log.jsonl`, forwards SIGTERM and SIGINT to it
//!    (PID 1 only receives the signals it handles, like a docker container without `--init`:
//!    `sleep` ignores SIGTERM and is stopped by the executor's SIGKILL after the grace period);
//! 5. reaps it and writes `exit.json`.
//!
//! It must run single-threaded (forks must be safe, and the namespace calls refuse threaded
//! callers): `main` runs it before any async runtime exists.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, pipe2, read, setsid};

use super::ExitStatus;
use super::launch::{self, ChildFds, LaunchSpec, SETUP_FAILED};
use super::logs::{LineSplitter, LogStream, LogWriter};
use super::taskdir::{ProcessId, Started, TaskDir, write_json};
use crate::fsutil::write_atomic;

/// How long the shim keeps collecting output after the program exited. The kernel kills the
/// rest of the PID namespace with it, which closes the pipes at once; only a pipe end smuggled
/// out of the namespace could hold them open, and that must not hold up the exit record.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Bytes read from a pipe at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Arguments of the hidden `shoal shim` subcommand.
#[derive(Debug, clap::Args)]
pub struct ShimArgs {
    /// The task's directory, holding its `spec.json`.
    #[arg(long)]
    pub dir: PathBuf,
}

/// Runs the shim; returns the process exit code: 0 once the task has started or its failure is
/// recorded, 1 (with the reason on stderr) when the shim could not get that far.
pub fn run(args: ShimArgs) -> i32 {
    // The daemon's descriptors must not leak into tasks, whatever opened them without
    // close-on-exec.
    // SAFETY: closes descriptors only; nothing in this fresh process uses any above 2 yet.
    unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    let dir = TaskDir::new(args.dir);
    let spec: LaunchSpec = match std::fs::read(dir.spec())
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("shim: reading {}: {e}", dir.spec().display());
            return 1;
        }
    };
    let (ready_r, ready_w) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(e) => {
            eprintln!("shim: creating a pipe: {e}");
            return 1;
        }
    };
    // SAFETY: the shim is single-threaded (see the module docs), so the child may do anything.
    match unsafe { fork() } {
        Err(e) => {
            eprintln!("shim: fork: {e}");
            1
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(ready_w);
            wait_until_started(&dir, ready_r)
        }
        Ok(ForkResult::Child) => {
            drop(ready_r);
            supervise(&dir, &spec, ready_w)
        }
    }
}

/// The launching half: returns once the supervisor closed `ready` (task started, or its
/// failure recorded) or died.
fn wait_until_started(dir: &TaskDir, ready: OwnedFd) -> i32 {
    let mut byte = [0u8; 1];
    // Nothing is ever written: end-of-file is the message.
    while read(&ready, &mut byte) == Err(Errno::EINTR) {}
    let started = matches!(
        dir.read_started(),
        Ok(Some(Started {
            program: Some(_),
            ..
        }))
    );
    if started || dir.exit().exists() {
        0
    } else {
        eprintln!("shim: the supervisor died before starting the task");
        1
    }
}

/// The supervisor; its return value is its exit code.
fn supervise(dir: &TaskDir, spec: &LaunchSpec, ready: OwnedFd) -> i32 {
    // Leave the daemon's session and process group: its end, or a ^C at its terminal, must not
    // reach the task. (Cannot fail: a forked child never leads a process group.)
    let _ = setsid();
    match run_task(dir, spec, ready) {
        Ok(()) => 0,
        Err(e) => {
            let message = format!("shim: {e}");
            eprintln!("{message}");
            // The program, if it was started, dies with this process (its parent-death
            // signal); say why the task ended rather than leave the executor to guess.
            if !dir.exit().exists() {
                let _ = dir.write_exit(&ExitStatus {
                    exit_code: SETUP_FAILED,
                    signal: None,
                    finished_at: SystemTime::now(),
                    error: Some(message),
                });
            }
            1
        }
    }
}

fn run_task(dir: &TaskDir, spec: &LaunchSpec, ready: OwnedFd) -> io::Result<()> {
    let shim = ProcessId::of(getpid().as_raw() as u32)?;
    dir.write_started(&Started {
        shim,
        program: None,
    })?;
    // Blocked before the fork so that no SIGCHLD or stop request is lost; they are read from a
    // signalfd instead (the program unblocks them for itself).
    let mut mask = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        mask.add(signal);
    }
    mask.thread_block()?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.log())?;
    let mut log = LogWriter::new(log_file);

    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| io::Error::other(format!("creating the PID namespace: {e}")))?;
    let (stdout_r, stdout_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (stderr_r, stderr_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: single-threaded (see the module docs).
    let child = match unsafe { fork() }? {
        ForkResult::Child => launch::exec_task(
            spec,
            ChildFds {
                shim,
                stdout: stdout_w,
                stderr: stderr_w,
                report: report_w,
            },
        ),
        ForkResult::Parent { child } => child,
    };
    drop((stdout_w, stderr_w, report_w));

    let program = ProcessId::of(child.as_raw() as u32)?;
    write_atomic(&dir.pid(), format!("{child}\n").as_bytes(), 0o644)?;
    write_json(
        &dir.started(),
        &Started {
            shim,
            program: Some(program),
        },
    )?;
    // The report pipe closes at exec (close-on-exec) or carries why there was none.
    let failure = read_all(&report_r)?;
    if !failure.is_empty() {
        log.line(SystemTime::now(), LogStream::Stderr, &failure)?;
        log.flush()?;
    }
    // Started (or failed, with the reason logged): the daemon's `start` may return.
    drop(ready);

    let (exit_code, signal) = watch(child, [stdout_r, stderr_r], &signals, &mut log)?;
    log.finish()?;
    dir.write_exit(&ExitStatus {
        exit_code,
        signal,
        finished_at: SystemTime::now(),
        error: (!failure.is_empty()).then(|| String::from_utf8_lossy(&failure).into_owned()),
    })
}

fn read_all(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// One of the program's output pipes.
struct Output {
    /// `None` once the pipe reached end-of-file.
    fd: Option<OwnedFd>,
    stream: LogStream,
    splitter: LineSplitter,
}

/// Logs the program's output and forwards stop signals until the program has exited and its
/// output is drained; returns its exit code and the signal that killed it, if one did.
fn watch(
    child: Pid,
    [stdout, stderr]: [OwnedFd; 2],
    signals: &SignalFd,
    log: &mut LogWriter,
) -> io::Result<(i32, Option<i32>)> {
    let mut outputs = [
        Output {
            fd: Some(stdout),
            stream: LogStream::Stdout,
            splitter: LineSplitter::default(),
        },
        Output {
            fd: Some(stderr),
            stream: LogStream::Stderr,
            splitter: LineSplitter::default(),
        },
    ];
    let mut buf = vec![0u8; READ_CHUNK];
    let mut exited: Option<((i32, Option<i32>), Instant)> = None;
    loop {
        let timeout = match exited {
            Some((status, _)) if outputs.iter().all(|o| o.fd.is_none()) => {
                return finish(outputs, log).map(|()| status);
            }
            Some((status, deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return finish(outputs, log).map(|()| status);
                }
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };

        // The signalfd first, then the pipes still open; a fixed array, no allocation.
        let signal_fd = PollFd::new(signals.as_fd(), PollFlags::POLLIN);
        let mut fds = [signal_fd.clone(), signal_fd.clone(), signal_fd];
        let mut polled = [0usize; 2];
        let mut count = 1;
        for (index, output) in outputs.iter().enumerate() {
            if let Some(fd) = &output.fd {
                fds[count] = PollFd::new(fd.as_fd(), PollFlags::POLLIN);
                polled[count - 1] = index;
                count += 1;
            }
        }
        match poll(&mut fds[..count], timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let is_ready = |fd: &PollFd| fd.revents().is_some_and(|events| !events.is_empty());
        let signalled = is_ready(&fds[0]);
        let mut readable = [false; 2];
        for (slot, fd) in fds[1..count].iter().enumerate() {
            readable[polled[slot]] = is_ready(fd);
        }

        if signalled {
            while let Some(info) = signals.read_signal()? {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {
                        if let Some(status) = reap(child)? {
                            exited = Some((status, Instant::now() + DRAIN_LIMIT));
                        }
                    }
                    // Once reaped, the PID may belong to someone else: forward nothing then.
                    Ok(signal) if exited.is_none() => {
                        // The program may be exiting already: nothing to forward to then.
                        let _ = kill(child, signal);
                    }
                    Ok(_) => {}
                    Err(_) => {}
                }
            }
        }
        let now = SystemTime::now();
        for (output, _) in outputs.iter_mut().zip(readable).filter(|(_, r)| *r) {
            let Some(fd) = &output.fd else { continue };
            let stream = output.stream;
            match read(fd, &mut buf) {
                Ok(0) => {
                    output.fd = None;
                    output.splitter.finish(|line| log.line(now, stream, line))?;
                }
                Ok(n) => output
                    .splitter
                    .feed(&buf[..n], |line| log.line(now, stream, line))?,
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // One write per wake-up makes the lines visible to `follow_logs`.
        log.flush()?;
    }
}

/// Emits partial last lines of pipes cut off by [`DRAIN_LIMIT`].
fn finish(mut outputs: [Output; 2], log: &mut LogWriter) -> io::Result<()> {
    let now = SystemTime::now();
    for output in &mut outputs {
        let stream = output.stream;
        output.splitter.finish(|line| log.line(now, stream, line))?;
    }
    Ok(())
}

/// The program's exit code and killing signal (shell-style: 128 + signal), if it has exited.
fn reap(child: Pid) -> io::Result<Option<(i32, Option<i32>)>> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some((code, None))),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                return Ok(Some((128 + signal as i32, Some(signal as i32))));
            }
            // Stops and continues are not exits.
            Ok(_) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
