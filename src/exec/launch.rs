//! What a task runs ([`LaunchSpec`], built from a service's container spec) and how the task's
//! process turns into it: namespace setup and `execve`, inside the shim's forked child.

use std::convert::Infallible;
use std::ffi::{CString, NulError};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bollard::models::TaskSpecContainerSpec;
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::prctl;
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use nix::unistd::{chdir, dup2_stderr, dup2_stdin, dup2_stdout, execve, sethostname};
use serde::{Deserialize, Serialize};

use super::ExecError;
use super::mounts::{self, TaskMount};
use super::taskdir::ProcessId;

/// Docker's default `PATH`, used when the spec sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The longest hostname the kernel accepts.
const MAX_HOSTNAME: usize = 64;
/// Exit code for a task that could not be set up (docker's "the runtime failed").
pub(crate) const SETUP_FAILED: i32 = 125;

/// Everything the shim needs to start a task's program; stored as the task's `spec.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// The program: a path, or a name looked up in the task's `PATH`.
    pub program: String,
    /// The program's arguments (not including `argv[0]`, which is `program` as written).
    pub args: Vec<String>,
    /// The complete environment, `KEY=value` entries.
    pub env: Vec<String>,
    /// The working directory (absolute).
    pub dir: PathBuf,
    /// The hostname in the task's UTS namespace.
    pub hostname: String,
    /// A prepared network namespace (a namespace file such as a bind mount made by
    /// [`crate::net::plumb::NetnsFile`]) the task joins; `None` gives it a fresh one with only `lo`.
    /// Absent from the `spec.json` of tasks started before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// What is mounted in the task's mount namespace, in order: its spec's mounts, then the
    /// node's `/etc/resolv.conf` if it has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<TaskMount>,
}

/// The program an image reference names: the docker CLI resolves `sleep` to `sleep:latest` (or
/// pins a digest, `sleep@sha256:...`), so the tag and digest go; a registry's `host:port/` part
/// is before the last `/` and stays.
fn program_of(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let name_start = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => &image[..name_start + colon],
        None => image,
    }
}

impl LaunchSpec {
    /// Builds the launch spec of a swarm task: `Image` names the program, `Args` are its
    /// arguments; `Command`, if set, replaces the program like docker's entrypoint (its first
    /// word is the program, the rest come before `Args`). `Env`, `Dir` and `Hostname` are
    /// honoured; `PATH`, `HOSTNAME` and `HOME` get docker's defaults when `Env` lacks them.
    /// `Mounts` need the node's directories: the executor plans them (see [`super::mounts`]).
    /// Other fields (user, resources, ...) are not supported by this executor and are ignored.
    pub fn from_container_spec(
        spec: &TaskSpecContainerSpec,
        default_hostname: &str,
    ) -> Result<LaunchSpec, ExecError> {
        let invalid = |message: String| ExecError::InvalidSpec(message);
        // Swarm requires an image even when Command replaces it; so does this executor, so that
        // a spec valid here is valid for the docker executor too.
        let image = spec
            .image
            .as_deref()
            .filter(|image| !image.is_empty())
            .ok_or_else(|| invalid("image reference must be provided".into()))?;
        let mut command = spec.command.iter().flatten().cloned();
        let program = command
            .next()
            .unwrap_or_else(|| program_of(image).to_owned());
        let args: Vec<String> = command.chain(spec.args.iter().flatten().cloned()).collect();

        let hostname = match spec.hostname.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => default_hostname,
        };
        if hostname.is_empty() || hostname.len() > MAX_HOSTNAME {
            return Err(invalid(format!(
                "invalid hostname {hostname:?}: it must have 1 to {MAX_HOSTNAME} characters"
            )));
        }
        let dir = match spec.dir.as_deref() {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from("/"),
        };
        if !dir.is_absolute() {
            return Err(invalid(format!(
                "the working directory {dir:?} is invalid, it needs to be an absolute path"
            )));
        }

        // An entry without '=' sets nothing (docker's CLI resolves such entries from the
        // client's environment before they ever reach a spec).
        let mut env: Vec<String> = spec
            .env
            .iter()
            .flatten()
            .filter(|entry| entry.contains('='))
            .cloned()
            .collect();
        for (key, value) in [
            ("PATH", DEFAULT_PATH),
            ("HOSTNAME", hostname),
            ("HOME", "/root"),
        ] {
            if !env.iter().any(|entry| env_key(entry) == key) {
                env.push(format!("{key}={value}"));
            }
        }

        let launch = LaunchSpec {
            program,
            args,
            env,
            dir,
            hostname: hostname.to_owned(),
            netns: None,
            mounts: Vec::new(),
        };
        // Everything ends up in C strings for execve: catch a NUL now, with a clear message,
        // rather than as a failed task.
        launch.c_strings().map_err(|_| {
            invalid("a command, argument or environment entry holds a NUL byte".into())
        })?;
        Ok(launch)
    }

    /// `argv` and `envp` for execve.
    fn c_strings(&self) -> Result<(Vec<CString>, Vec<CString>), NulError> {
        let argv = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|arg| CString::new(arg.as_bytes()))
            .collect::<Result<_, _>>()?;
        let envp = self
            .env
            .iter()
            .map(|entry| CString::new(entry.as_bytes()))
            .collect::<Result<_, _>>()?;
        CString::new(self.dir.as_os_str().as_encoded_bytes())?;
        CString::new(self.hostname.as_bytes())?;
        Ok((argv, envp))
    }

    /// The value of `PATH` the program is looked up in.
    fn path_var(&self) -> &str {
        self.env
            .iter()
            .rev()
            .find_map(|entry| entry.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(key, _)| key)
}

/// Why the task's process could not become the program: the shim records `message` and the
/// process exits with `code`.
#[derive(Debug)]
struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn setup(what: &str, errno: Errno) -> Failure {
        Failure {
            code: SETUP_FAILED,
            message: format!("{what}: {}", describe(errno)),
        }
    }
}

/// What the task's process starts from, besides its spec.
pub(crate) struct ChildFds {
    /// The shim that forked it, which it must not outlive.
    pub(crate) shim: ProcessId,
    /// Write end of the stdout pipe.
    pub(crate) stdout: OwnedFd,
    /// Write end of the stderr pipe.
    pub(crate) stderr: OwnedFd,
    /// Close-on-exec pipe on which a setup or exec failure is reported; a successful exec
    /// closes it unwritten.
    pub(crate) report: OwnedFd,
}

/// Runs in the shim's forked child, PID 1 of the task's fresh PID namespace: gives it its
/// other namespaces, then execs the program. Never returns: on failure it reports why on
/// `fds.report` and exits with 125 (setup), 126 (not executable) or 127 (not found).
pub(crate) fn exec_task(spec: &LaunchSpec, fds: ChildFds) -> ! {
    let Err(failure) = setup_and_exec(spec, &fds);
    // Nothing more can be done if even the report fails: the exit code still tells.
    let _ = nix::unistd::write(&fds.report, failure.message.as_bytes());
    // SAFETY: _exit ends the process without running the parent's atexit handlers or flushing
    // its stdio buffers, which this forked copy must not do.
    unsafe { libc::_exit(failure.code) }
}

fn setup_and_exec(spec: &LaunchSpec, fds: &ChildFds) -> Result<Infallible, Failure> {
    // If the shim dies the task must die too: nobody would collect its output or exit code.
    // (PID 1 of a namespace dying takes the whole namespace with it.)
    prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| Failure::setup("setting the parent-death signal", e))?;
    // The shim may have died before that took effect. /proc is still the host's here (the
    // task's own is mounted below), so the shim can be looked up in it.
    if !fds.shim.is_alive() {
        return Err(Failure {
            code: SETUP_FAILED,
            message: "the shim died while starting the task".into(),
        });
    }
    let devnull =
        File::open("/dev/null").map_err(|e| Failure::setup("opening /dev/null", io_errno(&e)))?;
    dup2_stdin(&devnull).map_err(|e| Failure::setup("redirecting stdin", e))?;
    dup2_stdout(&fds.stdout).map_err(|e| Failure::setup("redirecting stdout", e))?;
    dup2_stderr(&fds.stderr).map_err(|e| Failure::setup("redirecting stderr", e))?;
    reset_signals().map_err(|e| Failure::setup("resetting signal handling", e))?;

    // The network namespace is joined (a prepared one, already attached to the task's networks)
    // or made, before the mount namespace: the namespace file is a mount of the shim's.
    match &spec.netns {
        Some(path) => join_netns(path)?,
        None => unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| Failure::setup("creating the network namespace", e))?,
    }
    unshare(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS)
        .map_err(|e| Failure::setup("creating the UTS and mount namespaces", e))?;
    // Slave, not private: the task's mounts stay in the task, while the host's unmounts still
    // reach the task's copy of the host tree where the host's mounts are shared, as under
    // systemd (a private copy would keep unmounted filesystems busy while the task runs).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| Failure::setup("making the task's mounts its own", e))?;
    // A /proc of the task's PID namespace: `ps` in the task sees the task's processes only.
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| Failure::setup("mounting /proc", e))?;
    // Before the chdir: the working directory may be inside a volume.
    for m in &spec.mounts {
        mounts::apply(m).map_err(|e| {
            let what = format!("mounting {} on {}", m.source, m.target.display());
            Failure::setup(&what, io_errno(&e))
        })?;
    }
    sethostname(&spec.hostname)
        .map_err(|e| Failure::setup(&format!("setting the hostname {:?}", spec.hostname), e))?;
    // A fresh network namespace has `lo` down; programs expect localhost to work. (A prepared
    // one normally has it up already: setting it again is harmless.)
    loopback_up().map_err(|e| Failure::setup("bringing up lo", io_errno(&e)))?;
    chdir(&spec.dir)
        .map_err(|e| Failure::setup(&format!("chdir to working directory {:?}", spec.dir), e))?;

    let (argv, envp) = spec.c_strings().map_err(|_| Failure {
        code: SETUP_FAILED,
        message: "a command, argument or environment entry holds a NUL byte".into(),
    })?;
    let path = resolve(&spec.program, spec.path_var())?;
    let path = CString::new(path.into_os_string().into_encoded_bytes()).map_err(|_| Failure {
        code: SETUP_FAILED,
        message: "the program's path holds a NUL byte".into(),
    })?;
    let Err(errno) = execve(&path, &argv, &envp);
    Err(Failure {
        code: match errno {
            Errno::ENOENT | Errno::ENOTDIR => 127,
            _ => 126,
        },
        message: format!("exec: {:?}: {}", spec.program, describe(errno)),
    })
}

/// Moves this process into the network namespace named by the file at `path`.
fn join_netns(path: &Path) -> Result<(), Failure> {
    let what = || format!("joining the network namespace {}", path.display());
    let file = File::open(path).map_err(|e| Failure::setup(&what(), io_errno(&e)))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Failure::setup(&what(), e))
}

/// Finds `program` the way execvp would, but in the task's `PATH` rather than the shim's, with
/// docker's messages. A name with a '/' is used as it is.
fn resolve(program: &str, path_var: &str) -> Result<PathBuf, Failure> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| Failure {
            code: 127,
            message: format!("exec: {program:?}: executable file not found in $PATH"),
        })
}

/// Undoes what the shim's signal state would otherwise leak into the program: its blocked
/// signals (the mask survives exec) and its ignored ones (SIG_IGN survives exec too, and Rust
/// programs such as the shim ignore SIGPIPE).
fn reset_signals() -> Result<(), Errno> {
    SigSet::empty().thread_set_mask()?;
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: SIG_DFL installs no handler code, and this process has a single thread.
        unsafe { signal(sig, SigHandler::SigDfl) }?;
    }
    Ok(())
}

/// Sets `lo` up in the current network namespace (the classic SIOCSIFFLAGS ioctl: no netlink
/// needed for one flag).
fn loopback_up() -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data, for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: both requests read and write one ifreq, which `req` is, and `sock` is open.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn io_errno(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// An errno as Go (and so docker) words it: "no such file or directory".
fn describe(errno: Errno) -> String {
    let text = errno.desc();
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_and_digests_are_not_part_of_the_program() {
        assert_eq!(program_of("sleep"), "sleep");
        assert_eq!(program_of("sleep:latest"), "sleep");
        assert_eq!(program_of("busybox@sha256:abc"), "busybox");
        assert_eq!(program_of("/usr/bin/sleep:1"), "/usr/bin/sleep");
        assert_eq!(
            program_of("localhost:5000/lab/busybox:1"),
            "localhost:5000/lab/busybox"
        );
    }

    fn container(image: &str) -> TaskSpecContainerSpec {
        TaskSpecContainerSpec {
            image: Some(image.into()),
            ..Default::default()
        }
    }

    #[test]
    fn image_is_the_program_and_args_follow() {
        let spec = TaskSpecContainerSpec {
            args: Some(vec!["-c".into(), "echo hi".into()]),
            ..container("sh")
        };
        let launch = LaunchSpec::from_container_spec(&spec, "task1").unwrap();
        assert_eq!(launch.program, "sh");
        assert_eq!(launch.args, ["-c", "echo hi"]);
        assert_eq!(launch.hostname, "task1");
        assert_eq!(launch.dir, Path::new("/"));
    }

    #[test]
    fn command_replaces_the_program_like_an_entrypoint() {
        let spec = TaskSpecContainerSpec {
            command: Some(vec!["env".into(), "-i".into()]),
            args: Some(vec!["true".into()]),
            ..container("ignored")
        };
        let launch = LaunchSpec::from_container_spec(&spec, "h").unwrap();
        assert_eq!(launch.program, "env");
        assert_eq!(launch.args, ["-i", "true"]);
    }

    #[test]
    fn env_gets_docker_defaults_only_where_missing() {
        let spec = TaskSpecContainerSpec {
            env: Some(vec!["PATH=/opt".into(), "FOO=bar".into(), "LONELY".into()]),
            hostname: Some("web".into()),
            ..container("sh")
        };
        let launch = LaunchSpec::from_container_spec(&spec, "ignored").unwrap();
        assert_eq!(
            launch.env,
            ["PATH=/opt", "FOO=bar", "HOSTNAME=web", "HOME=/root"]
        );
        assert_eq!(launch.path_var(), "/opt");
        assert_eq!(launch.hostname, "web");
    }

    #[test]
    fn rejects_what_cannot_run_with_docker_wording() {
        let err = LaunchSpec::from_container_spec(&TaskSpecContainerSpec::default(), "h")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid ContainerSpec: image reference must be provided"
        );
        let relative = TaskSpecContainerSpec {
            dir: Some("tmp".into()),
            ..container("sh")
        };
        let err = LaunchSpec::from_container_spec(&relative, "h")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs to be an absolute path"), "{err}");
        let nul = TaskSpecContainerSpec {
            args: Some(vec!["a\0b".into()]),
            ..container("sh")
        };
        assert!(LaunchSpec::from_container_spec(&nul, "h").is_err());
        assert!(LaunchSpec::from_container_spec(&container("sh"), &"x".repeat(65)).is_err());
    }

    #[test]
    fn resolves_in_the_tasks_path_with_dockers_message() {
        assert_eq!(
            resolve("sh", "/nonexistent:/bin").unwrap().as_path(),
            Path::new("/bin/sh")
        );
        assert_eq!(resolve("./x", "/bin").unwrap().as_path(), Path::new("./x"));
        let failure = resolve("no-such-program-here", "/bin").unwrap_err();
        assert_eq!(failure.code, 127);
        assert_eq!(
            failure.message,
            "exec: \"no-such-program-here\": executable file not found in $PATH"
        );
    }

    #[test]
    fn a_spec_json_from_before_prepared_namespaces_still_reads() {
        let old = r#"{"program":"sleep","args":["1"],"env":[],"dir":"/","hostname":"h"}"#;
        let spec: LaunchSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.netns, None);
        let prepared = LaunchSpec {
            netns: Some("/var/lib/shoal/netns/t1".into()),
            ..spec
        };
        let json = serde_json::to_string(&prepared).unwrap();
        assert_eq!(serde_json::from_str::<LaunchSpec>(&json).unwrap(), prepared);
    }

    #[test]
    fn words_errors_like_go() {
        assert_eq!(describe(Errno::ENOENT), "no such file or directory");
    }
}
