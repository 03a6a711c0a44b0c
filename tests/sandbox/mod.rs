//! A sandbox for tests that plumb real devices as root: a thread with a network namespace and a
//! mount namespace of its own, so that nothing the test makes (links, bridges, namespace files,
//! mounts) reaches the host's namespaces, and all of it is gone with the thread, failed or not.

// Each test crate uses its own part of the sandbox.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};

/// Whether the test can run; says why not when it cannot.
pub fn have_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: it needs root (it makes network namespaces and devices)");
    }
    root
}

/// Runs `body` in a fresh sandbox thread, on a current-thread tokio runtime, and gives it a
/// scratch directory (named `shoalp-...`) for namespace files. Threads and processes started
/// from the body (tokio's blocking pool, shims) inherit the sandbox's namespaces.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce(PathBuf) -> Fut + Send,
    Fut: Future<Output = ()>,
{
    // Made and removed from the host's mount namespace, where no mount covers it.
    let scratch = tempfile::Builder::new()
        .prefix("shoalp-")
        .tempdir()
        .unwrap();
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
                    .expect("creating the sandbox's namespaces");
                // A slave copy: the host's mounts still reach the sandbox, none of its own
                // reach the host.
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_SLAVE,
                    None::<&str>,
                )
                .expect("making the sandbox's mounts its own");
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(body(scratch.path().to_path_buf()));
            })
            .join()
    });
    drop(scratch);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `f` on a thread inside the network namespace at `netns` (within the sandbox).
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(netns).unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET).expect("joining a task's namespace");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An rtnetlink handle on the network namespace at `netns`, for looking at what was made.
/// Must be called inside the sandbox's runtime.
pub fn netlink_in(netns: &Path) -> rtnetlink::Handle {
    let runtime = tokio::runtime::Handle::current();
    let (connection, handle, _) = in_netns(netns, || {
        let _entered = runtime.enter();
        rtnetlink::new_connection().unwrap()
    });
    tokio::spawn(connection);
    handle
}
