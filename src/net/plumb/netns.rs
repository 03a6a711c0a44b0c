//! Network namespaces as files: a task's namespace made before the task ([`NetnsFile`]), and
//! netlink connections and code run inside such a namespace.
//!
//! A namespace lives as long as something refers to it: a process (or thread) in it, an open
//! descriptor, or a bind mount of its `nsfs` file. A task's namespace must exist before the
//! task's program (so that its network is ready when the program starts) and must not depend on
//! any daemon thread or process staying alive; so it is made by a short-lived thread that
//! unshares its own network namespace, and kept by a bind mount of that thread's
//! `/proc/thread-self/ns/net` onto a file. The mount, not the thread, keeps it; the task joins
//! it by the file's path (`setns`), and it goes once the mount is gone and the task has exited.
//!
//! Only the calling *thread* ever changes namespace (unshare and setns of a network namespace
//! are per thread), so none of this disturbs the daemon's other threads. The functions here
//! block for as long as a thread takes to start and finish (well under a millisecond).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use rtnetlink::Handle;
use rtnetlink::sys::TokioSocket;
use tokio::task::JoinHandle;

/// A network namespace kept alive by a bind mount at a file path, for a task to be started in
/// (see [`crate::exec::Executor::start`]).
///
/// The mount is in the daemon's mount namespace (shims share it, and each task's mount
/// namespace is a copy of it): a daemon restarted in a *new* mount namespace (for instance by a
/// new `ip netns exec`) finds an empty file at the path, while the running tasks keep their
/// namespaces (reach them through `/proc/<pid>/ns/net` then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsFile {
    path: PathBuf,
}

impl NetnsFile {
    /// Creates a new network namespace (with only `lo`, down) bound at `path`, which must not
    /// exist yet (`AlreadyExists`); its directory must exist.
    pub fn create(path: &Path) -> io::Result<NetnsFile> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(path)?;
        let bound = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    unshare(CloneFlags::CLONE_NEWNET)?;
                    mount(
                        Some("/proc/thread-self/ns/net"),
                        path,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        if let Err(e) = bound {
            let _ = fs::remove_file(path);
            return Err(e.into());
        }
        Ok(NetnsFile { path: path.into() })
    }

    /// The namespace file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and deletes the namespace file at `path`. Tolerant: a path that is not mounted
    /// (left over from a previous mount namespace) is just deleted, an absent one is fine.
    ///
    /// Every task's mount namespace is a copy of the daemon's, made when the task started, so it
    /// holds a copy of each namespace file there was then; deleting the file detaches those
    /// copies too (the kernel lazily unmounts mounts on an unlinked file in every mount
    /// namespace), so the namespace is freed once no process is in it, not when the last task
    /// started before the removal exits.
    pub fn remove(path: &Path) -> io::Result<()> {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Runs `f` on a thread that has joined the network namespace at `netns`; returns its result.
pub(super) fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let file = File::open(netns)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET)?;
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An rtnetlink connection inside another network namespace: its socket is made by a thread in
/// that namespace, and a netlink socket stays bound to the namespace it was made in. The
/// connection runs on the current tokio runtime until this is dropped.
pub(super) struct NetnsHandle {
    pub(super) handle: Handle,
    connection: JoinHandle<()>,
}

impl NetnsHandle {
    /// Connects to the namespace at `netns`. Must be called inside a tokio runtime.
    pub(super) fn open(netns: &Path) -> io::Result<NetnsHandle> {
        let fd: OwnedFd = in_netns(netns, || {
            Ok(socket(
                AddressFamily::Netlink,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkRoute,
            )?)
        })?;
        // SAFETY: `fd` is an open netlink socket, whose ownership passes to the TokioSocket.
        let socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        Ok(NetnsHandle {
            handle,
            connection: tokio::spawn(connection),
        })
    }
}

impl Drop for NetnsHandle {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
