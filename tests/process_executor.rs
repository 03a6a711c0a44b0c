//! The process executor against real namespaces and real shims (the `shoal` binary cargo
//! builds for these tests). Needs root: the tests fail, rather than skip, without it (except the
//! one that also plumbs a network, in a sandbox, which skips).

mod sandbox;

use std::future::Future;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{Mount, MountType, TaskSpecContainerSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use shoal::exec::{
    ExecError, Executor, ExitStatus, LogLine, LogOptions, LogStream, ProcessExecutor, TaskRunState,
    TaskStart,
};
use shoal::net::plumb::{Attachment, NetnsFile, Plumber};
use shoal::net::routes::NetworkInfo;
use tempfile::TempDir;

/// A guard against hangs, not a timing assertion: anything here takes well under a second.
const PATIENCE: Duration = Duration::from_secs(60);

struct Fixture {
    root: TempDir,
    exec: ProcessExecutor,
}

impl Fixture {
    fn new() -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the process executor tests need root (they create PID, network, UTS and mount \
             namespaces): run them as root"
        );
        let root = tempfile::tempdir().unwrap();
        let exec = executor(root.path());
        Fixture { root, exec }
    }

    fn task_dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id)
    }

    async fn start(&self, id: &str, spec: TaskSpecContainerSpec) {
        patient(
            "start",
            self.exec.start(&TaskStart {
                default_hostname: "default-host",
                ..TaskStart::new(id, &spec)
            }),
        )
        .await
        .unwrap();
    }

    async fn run(&self, id: &str, spec: TaskSpecContainerSpec) -> (ExitStatus, Vec<LogLine>) {
        self.start(id, spec).await;
        let status = patient("wait", self.exec.wait(id)).await.unwrap();
        let logs = self.exec.logs(id, &LogOptions::default()).await.unwrap();
        (status, logs)
    }

    async fn pid(&self, id: &str) -> u32 {
        match self.exec.status(id).await {
            TaskRunState::Running { pid } => pid,
            other => panic!("task {id} is not running: {other:?}"),
        }
    }
}

/// Task `id` running `spec`, in the prepared namespace `netns` if any, its resolv.conf naming
/// `nameservers`.
fn task<'a>(
    id: &'a str,
    spec: &'a TaskSpecContainerSpec,
    netns: Option<&'a Path>,
    nameservers: &'a [IpAddr],
) -> TaskStart<'a> {
    TaskStart {
        default_hostname: "h",
        netns,
        nameservers,
        ..TaskStart::new(id, spec)
    }
}

/// A new executor on `root`, as a restarted daemon would make one.
fn executor(root: &Path) -> ProcessExecutor {
    ProcessExecutor::with_shim(root.into(), env!("CARGO_BIN_EXE_shoal").into()).unwrap()
}

fn spec(program: &str, args: &[&str]) -> TaskSpecContainerSpec {
    TaskSpecContainerSpec {
        image: Some(program.into()),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        ..Default::default()
    }
}

fn sh(script: &str) -> TaskSpecContainerSpec {
    spec("sh", &["-c", script])
}

async fn patient<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {PATIENCE:?}"))
}

fn lines_of(logs: &[LogLine], stream: LogStream) -> Vec<&str> {
    logs.iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.line.as_str())
        .collect()
}

fn texts(logs: &[LogLine]) -> Vec<&str> {
    logs.iter().map(|l| l.line.as_str()).collect()
}

/// The PIDs of host processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    patient(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn output_is_logged_in_order_per_stream_and_a_clean_exit_is_a_success() {
    let f = Fixture::new();
    let (status, logs) = f
        .run(
            "echo",
            sh("echo out1; echo err1 >&2; echo out2; echo err2 >&2; echo; printf partial"),
        )
        .await;
    assert_eq!(status.exit_code, 0);
    assert_eq!(status.signal, None);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        lines_of(&logs, LogStream::Stdout),
        ["out1", "out2", "", "partial"]
    );
    assert_eq!(lines_of(&logs, LogStream::Stderr), ["err1", "err2"]);
    assert!(logs.windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(f.exec.status("echo").await, TaskRunState::Exited(status));

    let tail = LogOptions {
        tail: Some(1),
        since: None,
    };
    let last = f.exec.logs("echo", &tail).await.unwrap();
    assert_eq!(texts(&last), [logs.last().unwrap().line.as_str()]);
}

#[tokio::test]
async fn a_non_zero_exit_code_is_reported() {
    let f = Fixture::new();
    let (status, _) = f.run("three", sh("exit 3")).await;
    assert_eq!((status.exit_code, status.signal), (3, None));
    assert!(!status.success());
    assert_eq!(status.error, None);
}

#[tokio::test]
async fn env_dir_and_hostname_are_honoured() {
    let f = Fixture::new();
    let workdir = tempfile::tempdir().unwrap();
    let spec = TaskSpecContainerSpec {
        env: Some(vec!["FOO=bar baz".into()]),
        dir: Some(workdir.path().to_str().unwrap().into()),
        hostname: Some("web-1".into()),
        ..sh("echo \"$FOO\"; pwd; hostname; echo \"$HOSTNAME\"; echo \"$PATH\"")
    };
    let (status, logs) = f.run("envdir", spec).await;
    assert!(status.success(), "{status:?} {logs:?}");
    assert_eq!(
        texts(&logs),
        [
            "bar baz",
            workdir.path().to_str().unwrap(),
            "web-1",
            "web-1",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ]
    );

    // Without a Hostname, the executor's default applies.
    let (_, logs) = f.run("defaulthost", sh("hostname")).await;
    assert_eq!(texts(&logs), ["default-host"]);
}

#[tokio::test]
async fn a_task_has_its_own_network_uts_and_pid_namespaces() {
    let f = Fixture::new();
    let script = "readlink /proc/self/ns/net /proc/self/ns/uts; \
                  tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; \
                  ip -o link; echo \"pid $$\"; ls /proc | grep -c '^[0-9]'; \
                  ls /proc/$$/fd";
    // A descriptor the "daemon" holds without close-on-exec must still not reach the task.
    let leaky = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: dup has no preconditions; the copy (which has no close-on-exec) is closed below.
    let leaked = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&leaky)) };
    assert!(leaked > 2);
    let (status, logs) = f.run("ns", sh(script)).await;
    // SAFETY: `leaked` is ours and open.
    unsafe { libc::close(leaked) };
    assert!(status.success(), "{status:?} {logs:?}");
    let out = texts(&logs);
    let own = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
    assert_ne!(Path::new(out[0]), own("net"), "{out:?}");
    assert_ne!(Path::new(out[1]), own("uts"), "{out:?}");
    // Only the loopback device, and it is up.
    assert_eq!(out[2], "lo", "{out:?}");
    assert!(out[3].starts_with("1: lo: <LOOPBACK,UP"), "{out:?}");
    assert_eq!(out.len(), 9, "one device only: {out:?}");
    // The program is PID 1, and its /proc shows its own processes only.
    assert_eq!(out[4], "pid 1");
    let visible: usize = out[5].parse().unwrap();
    assert!(visible < 10, "the task's /proc shows {visible} processes");
    // Only stdin, stdout and stderr: nothing of the daemon's or the shim's.
    // (A simple command, not a pipeline, whose pipe the shell would hold for a moment.)
    assert_eq!(out[6..], ["0", "1", "2"]);
}

#[tokio::test]
async fn stop_kills_a_program_that_ignores_sigterm_and_leaves_nothing_behind() {
    let f = Fixture::new();
    f.start("sleeper", spec("sleep", &["1001.25"])).await;
    let pid = f.pid("sleeper").await;
    assert_eq!(processes_running(&["sleep", "1001.25"]), [pid]);
    let netns = f.exec.netns_path("sleeper").await.unwrap();
    assert_eq!(netns, PathBuf::from(format!("/proc/{pid}/ns/net")));
    assert_ne!(
        std::fs::read_link(&netns).unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap()
    );

    patient("stop", f.exec.stop("sleeper", Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(processes_running(&["sleep", "1001.25"]).is_empty());
    // PID 1 of a namespace ignores SIGTERM without a handler: the grace period ended in SIGKILL.
    let TaskRunState::Exited(status) = f.exec.status("sleeper").await else {
        panic!("not exited after stop");
    };
    assert_eq!((status.exit_code, status.signal), (137, Some(9)));
    assert_eq!(f.exec.netns_path("sleeper").await, None);
    // Stopping again is harmless.
    f.exec.stop("sleeper", Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn a_program_that_handles_sigterm_stops_gracefully() {
    let f = Fixture::new();
    f.start(
        "graceful",
        sh("trap 'echo bye; exit 0' TERM; echo ready; sleep 1005.25 & wait"),
    )
    .await;
    let mut follow = f
        .exec
        .follow_logs("graceful", LogOptions::default())
        .await
        .unwrap();
    let first = patient("the ready line", follow.recv()).await.unwrap();
    assert_eq!(first.line, "ready");

    patient("stop", f.exec.stop("graceful", PATIENCE))
        .await
        .unwrap();
    let status = f.exec.wait("graceful").await.unwrap();
    assert!(status.success(), "{status:?}");
    // The follower got the last line, then its channel closed with the task.
    let mut rest = Vec::new();
    while let Some(line) = patient("the end of the follow", follow.recv()).await {
        rest.push(line.line);
    }
    assert_eq!(rest, ["bye"]);
    assert!(processes_running(&["sleep", "1005.25"]).is_empty());
}

#[tokio::test]
async fn background_and_daemonized_children_do_not_outlive_their_task() {
    let f = Fixture::new();
    f.start(
        "forker",
        sh("sleep 1002.25 & (setsid sleep 1003.25 &); sleep 1004.25"),
    )
    .await;
    until("the task's three sleeps run", || {
        [
            ["sleep", "1002.25"],
            ["sleep", "1003.25"],
            ["sleep", "1004.25"],
        ]
        .iter()
        .all(|argv| processes_running(argv).len() == 1)
    })
    .await;
    patient("stop", f.exec.stop("forker", Duration::from_secs(1)))
        .await
        .unwrap();
    for marker in ["1002.25", "1003.25", "1004.25"] {
        assert!(
            processes_running(&["sleep", marker]).is_empty(),
            "sleep {marker} survived its task"
        );
    }
}

#[tokio::test]
async fn a_missing_program_exits_127_with_dockers_message() {
    let f = Fixture::new();
    let (status, logs) = f.run("missing", spec("no-such-program-xyz", &[])).await;
    let message = "exec: \"no-such-program-xyz\": executable file not found in $PATH";
    assert_eq!((status.exit_code, status.signal), (127, None));
    assert_eq!(status.error.as_deref(), Some(message));
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].stream, logs[0].line.as_str()),
        (LogStream::Stderr, message)
    );

    let data = tempfile::NamedTempFile::new().unwrap();
    let data = data.path().to_str().unwrap();
    let (status, logs) = f.run("noexec", spec(data, &[])).await;
    assert_eq!(status.exit_code, 126, "{logs:?}");
    assert_eq!(texts(&logs), [format!("exec: {data:?}: permission denied")]);

    let bad_dir = TaskSpecContainerSpec {
        dir: Some("/no/such/dir".into()),
        ..spec("true", &[])
    };
    let (status, logs) = f.run("baddir", bad_dir).await;
    assert_eq!(status.exit_code, 125, "{logs:?}");
    assert!(texts(&logs)[0].contains("/no/such/dir"), "{logs:?}");
}

#[tokio::test]
async fn a_new_executor_adopts_running_and_exited_tasks() {
    let f = Fixture::new();
    f.start("survivor", spec("sleep", &["1006.25"])).await;
    f.run("finished", sh("echo done; exit 4")).await;
    let pid = f.pid("survivor").await;
    drop(f.exec);

    // As after a daemon restart: a fresh executor on the same directory.
    let exec = executor(f.root.path());
    assert_eq!(exec.list().await.unwrap(), ["finished", "survivor"]);
    assert_eq!(exec.status("survivor").await, TaskRunState::Running { pid });
    let TaskRunState::Exited(done) = exec.status("finished").await else {
        panic!("the finished task is not reported exited");
    };
    assert_eq!(done.exit_code, 4);
    let logs = exec.logs("finished", &LogOptions::default()).await.unwrap();
    assert_eq!(texts(&logs), ["done"]);

    let waiter = {
        let exec = exec.clone();
        tokio::spawn(async move { exec.wait("survivor").await })
    };
    patient("stop", exec.stop("survivor", Duration::from_secs(1)))
        .await
        .unwrap();
    let status = patient("wait", waiter).await.unwrap().unwrap();
    assert_eq!(status.signal, Some(9));
    assert!(processes_running(&["sleep", "1006.25"]).is_empty());
}

#[tokio::test]
async fn a_task_whose_shim_dies_is_killed_and_reported_lost() {
    let f = Fixture::new();
    f.start("orphaned", spec("sleep", &["1007.25"])).await;
    let pid = f.pid("orphaned").await;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let shim: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();

    let status = patient("wait", f.exec.wait("orphaned")).await.unwrap();
    assert_eq!((status.exit_code, status.signal), (137, Some(9)));
    assert!(status.error.unwrap().contains("shim died"));
    until("the orphaned sleep is gone", || {
        processes_running(&["sleep", "1007.25"]).is_empty()
    })
    .await;
}

#[tokio::test]
async fn remove_kills_and_deletes_and_ids_are_unique() {
    let f = Fixture::new();
    f.start("doomed", spec("sleep", &["1008.25"])).await;
    let again = f
        .exec
        .start(&TaskStart::new("doomed", &spec("true", &[])))
        .await;
    assert!(
        matches!(again, Err(ExecError::AlreadyExists(_))),
        "{again:?}"
    );
    assert!(f.task_dir("doomed").is_dir());

    patient("remove", f.exec.remove("doomed")).await.unwrap();
    assert!(!f.task_dir("doomed").exists());
    assert!(processes_running(&["sleep", "1008.25"]).is_empty());
    assert_eq!(f.exec.status("doomed").await, TaskRunState::Unknown);
    assert!(f.exec.list().await.unwrap().is_empty());
    assert!(matches!(
        f.exec.remove("doomed").await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        f.exec
            .start(&task("../escape", &spec("true", &[]), None, &[]))
            .await,
        Err(ExecError::InvalidTaskId(_))
    ));
}

#[tokio::test]
async fn a_shim_that_cannot_run_fails_the_start_and_leaves_no_task() {
    let f = Fixture::new();
    let exec = ProcessExecutor::with_shim(f.root.path().into(), "/no/such/shoal".into()).unwrap();
    let err = exec
        .start(&task("nostart", &spec("true", &[]), None, &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Shim { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/shoal"), "{err}");
    assert!(!f.task_dir("nostart").exists());
}

#[tokio::test]
async fn long_lines_are_split_and_follow_ends_with_the_task() {
    let f = Fixture::new();
    f.start(
        "chatty",
        sh("head -c 40000 /dev/zero | tr '\\0' x; echo; sleep 0.2; echo after"),
    )
    .await;
    let mut follow = f
        .exec
        .follow_logs("chatty", LogOptions::default())
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(line) = patient("the follow", follow.recv()).await {
        lines.push(line.line);
    }
    let lengths: Vec<usize> = lines.iter().map(String::len).collect();
    assert_eq!(lengths, [16384, 16384, 40000 - 2 * 16384, 5]);
    assert_eq!(lines[3], "after");
}

#[test]
fn a_task_runs_in_its_prepared_network_namespace() {
    if !sandbox::have_root("a_task_runs_in_its_prepared_network_namespace") {
        return;
    }
    // In a sandbox: the plumbing makes a bridge and a veth, which must not reach the host.
    sandbox::run(|scratch| async move {
        let network = NetworkInfo {
            id: "n1".into(),
            name: "execnet".into(),
            vni: 4098,
            subnet: "10.0.9.0/24".parse().unwrap(),
            gateway: "10.0.9.1".parse().unwrap(),
            mtu: 1450,
        };
        let ns = NetnsFile::create(&scratch.join("shoalp-task")).unwrap();
        let attachment = Attachment {
            task_id: "prepared".into(),
            ifname: "eth0".into(),
            network,
            address: "10.0.9.2/24".parse().unwrap(),
            default_route: true,
        };
        Plumber::new()
            .unwrap()
            .attach(ns.path(), &attachment)
            .await
            .unwrap();
        let ns_inode = std::fs::metadata(ns.path()).unwrap().ino();

        let root = tempfile::tempdir().unwrap();
        let exec = executor(root.path());
        let script = "readlink /proc/self/ns/net; \
                      tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort; \
                      ip -o -4 addr show dev eth0; ip -4 route show default";
        patient(
            "start",
            exec.start(&task("prepared", &sh(script), Some(ns.path()), &[])),
        )
        .await
        .unwrap();
        let status = patient("wait", exec.wait("prepared")).await.unwrap();
        let logs = exec.logs("prepared", &LogOptions::default()).await.unwrap();
        assert!(status.success(), "{status:?} {logs:?}");
        let out = texts(&logs);
        assert_eq!(out[0], format!("net:[{ns_inode}]"), "{out:?}");
        assert_eq!(out[1..3], ["eth0", "lo"], "{out:?}");
        assert!(out[3].contains("inet 10.0.9.2/24"), "{out:?}");
        assert!(
            out[4].starts_with("default via 10.0.9.1 dev eth0"),
            "{out:?}"
        );

        // While a task runs, its namespace is also reachable through its process.
        let other = NetnsFile::create(&scratch.join("shoalp-other")).unwrap();
        patient(
            "start",
            exec.start(&task(
                "sleeper",
                &spec("sleep", &["1009.25"]),
                Some(ns.path()),
                &[],
            )),
        )
        .await
        .unwrap();
        let netns = exec.netns_path("sleeper").await.unwrap();
        let sleeper_inode = std::fs::metadata(&netns).unwrap().ino();
        // The task's mount namespace holds a copy of every namespace file there was when it
        // started; removing one (unlinking it) detaches the copy too, so that the namespace is
        // freed at once, not when the last task started before the removal exits.
        let mountinfo = netns.parent().unwrap().parent().unwrap().join("mountinfo");
        let mounted = || {
            std::fs::read_to_string(&mountinfo)
                .unwrap()
                .contains("shoalp-other")
        };
        let was_mounted = mounted();
        NetnsFile::remove(other.path()).unwrap();
        let still_mounted = mounted();
        patient("remove", exec.remove("sleeper")).await.unwrap();
        assert_eq!(sleeper_inode, ns_inode);
        assert!(was_mounted);
        assert!(
            !still_mounted,
            "a removed namespace file stays mounted in a task"
        );
        NetnsFile::remove(ns.path()).unwrap();
    });
}

#[tokio::test]
async fn volumes_bind_mounts_tmpfs_and_resolv_conf_are_the_tasks_own() {
    let f = Fixture::new();
    // The daemon's layout: tasks and volumes side by side in the data dir.
    let exec = executor(&f.root.path().join("tasks"));
    let t = f.root.path().join("mnt");
    let host = f.root.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("marker"), "from the host\n").unwrap();
    let mount = |typ: MountType, source: Option<&Path>, target: &str, read_only: bool| Mount {
        typ: Some(typ),
        source: source.map(|s| s.display().to_string()),
        target: Some(t.join(target).display().to_string()),
        read_only: Some(read_only),
        ..Default::default()
    };
    let with_mounts = |script: &str| TaskSpecContainerSpec {
        mounts: Some(vec![
            mount(
                MountType::VOLUME,
                Some(Path::new("stack_data")),
                "vol",
                false,
            ),
            mount(MountType::BIND, Some(&host), "ro", true),
            mount(MountType::VOLUME, None, "anon", false),
            mount(MountType::TMPFS, None, "tmp", false),
        ]),
        ..sh(&script.replace("MNT", &t.display().to_string()))
    };
    let gateways: Vec<IpAddr> = vec!["10.0.1.1".parse().unwrap(), "10.0.2.1".parse().unwrap()];
    let script = "cat /etc/resolv.conf; echo kept > MNT/vol/file; cat MNT/ro/marker; \
                  touch MNT/ro/new 2>/dev/null && echo writable || echo read-only; \
                  echo scratch > MNT/anon/file; \
                  echo fresh > MNT/tmp/file && stat -f -c %T MNT/tmp && stat -c %a MNT/tmp";
    patient(
        "start",
        exec.start(&task("writer", &with_mounts(script), None, &gateways)),
    )
    .await
    .unwrap();
    let status = patient("wait", exec.wait("writer")).await.unwrap();
    let logs = exec.logs("writer", &LogOptions::default()).await.unwrap();
    assert!(status.success(), "{status:?} {logs:?}");
    assert_eq!(
        texts(&logs),
        [
            "nameserver 10.0.1.1",
            "nameserver 10.0.2.1",
            "options ndots:0",
            "from the host",
            "read-only",
            "tmpfs",
            "1777"
        ]
    );
    // The mounts were the task's: the host sees the volumes' directories, not its mount points.
    let volume = f.root.path().join("volumes/stack_data");
    assert_eq!(
        std::fs::read_to_string(volume.join("file")).unwrap(),
        "kept\n"
    );
    assert!(!t.join("vol/file").exists());
    assert!(!t.join("tmp/file").exists());
    let anonymous = f.root.path().join("tasks/writer/volume-2");
    assert_eq!(
        std::fs::read_to_string(anonymous.join("file")).unwrap(),
        "scratch\n"
    );

    // The named volume outlives the task; the anonymous one goes with it. No network: the
    // host's resolv.conf.
    patient("remove", exec.remove("writer")).await.unwrap();
    assert!(!anonymous.exists());
    let (status, logs) = {
        let reader = with_mounts("cat MNT/vol/file; ls MNT/anon | wc -l; cat /etc/resolv.conf");
        patient("start", exec.start(&task("reader", &reader, None, &[])))
            .await
            .unwrap();
        let status = patient("wait", exec.wait("reader")).await.unwrap();
        (
            status,
            exec.logs("reader", &LogOptions::default()).await.unwrap(),
        )
    };
    assert!(status.success(), "{status:?} {logs:?}");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    let want: Vec<&str> = ["kept", "0"]
        .into_iter()
        .chain(host_resolv.lines())
        .collect();
    assert_eq!(texts(&logs), want);
}

#[tokio::test]
async fn a_mount_that_cannot_be_made_fails_the_task_and_says_why() {
    let f = Fixture::new();
    let missing = Mount {
        typ: Some(MountType::BIND),
        source: Some("/no/such/dir".into()),
        target: Some("/mnt/x".into()),
        ..Default::default()
    };
    let unmade = TaskSpecContainerSpec {
        mounts: Some(vec![missing]),
        ..spec("true", &[])
    };
    let err = f
        .exec
        .start(&task("unmade", &unmade, None, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid ContainerSpec: invalid mount config for type \"bind\": bind source path does not exist: /no/such/dir"
    );
    assert!(!f.task_dir("unmade").exists());

    // A mount point under a file cannot be made: the task fails before its program runs.
    let file = f.root.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_a_file = Mount {
        typ: Some(MountType::VOLUME),
        target: Some(file.join("x").display().to_string()),
        ..Default::default()
    };
    let unmountable = TaskSpecContainerSpec {
        mounts: Some(vec![under_a_file]),
        ..spec("true", &[])
    };
    f.start("unmountable", unmountable).await;
    let status = patient("wait", f.exec.wait("unmountable")).await.unwrap();
    assert_eq!(status.exit_code, 125);
    let error = status.error.unwrap_or_default();
    assert!(error.starts_with("mounting "), "{error}");
    assert!(error.ends_with(": not a directory"), "{error}");
}
