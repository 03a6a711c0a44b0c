//! Compares ways of opening a TAP device by how fast a TCP stream crosses a userspace "wire"
//! made of two TAPs: this program opens both and copies every frame from one to the other, one
//! thread per direction; `scripts/bench-tap.sh` moves each TAP into its own network namespace
//! and runs iperf3 across. Needs root (CAP_NET_ADMIN), so a plain `cargo bench` skips it.
//!
//! `cargo bench --bench tap_open -- <tun-tap|tun-rs|tun-rs-offload|ioctl> A B SECS`
//!
//! - `tun-tap`: the `tun-tap` crate (no virtio-net header, no multi-queue): one frame per call.
//! - `tun-rs`: the `tun-rs` crate, plain.
//! - `tun-rs-offload`: `tun-rs` with its offload option (`IFF_VNET_HDR` and TSO offloads):
//!   64 KB super-frames pass through unchanged.
//! - `ioctl`: shoal's own [`shoal::net::overlay::tap::open_tap`] (direct ioctls, virtio-net
//!   header, TSO offloads, multi-queue capable).

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// One opened TAP: blocking receive and send of one frame (with whatever header it carries).
trait Frames: Send + Sync {
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    fn send(&self, buf: &[u8]) -> std::io::Result<usize>;
}

impl Frames for tun_tap::Iface {
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        tun_tap::Iface::recv(self, buf)
    }
    fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
        tun_tap::Iface::send(self, buf)
    }
}

impl Frames for tun_rs::SyncDevice {
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        tun_rs::SyncDevice::recv(self, buf)
    }
    fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
        tun_rs::SyncDevice::send(self, buf)
    }
}

/// A queue of a TAP opened by shoal, switched to blocking mode for this comparison.
struct Direct(shoal::net::overlay::LocalPort);

impl Frames for Direct {
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(0, buf)
    }
    fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(0, &[std::io::IoSlice::new(buf)])
    }
}

fn open(kind: &str, name: &str) -> std::io::Result<Arc<dyn Frames>> {
    Ok(match kind {
        "tun-tap" => {
            let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap)?;
            set_up(name)?;
            Arc::new(iface)
        }
        "tun-rs" | "tun-rs-offload" => Arc::new(
            tun_rs::DeviceBuilder::new()
                .name(name)
                .layer(tun_rs::Layer::L2)
                .mtu(1500)
                .offload(kind == "tun-rs-offload")
                .build_sync()?,
        ),
        "ioctl" => {
            let port = shoal::net::overlay::tap::open_tap(name, 1, 1500)?;
            set_blocking(port.fd(0))?;
            Arc::new(Direct(port))
        }
        _ => panic!("unknown kind {kind}"),
    })
}

/// `tun-tap` leaves the device down.
fn set_up(name: &str) -> std::io::Result<()> {
    let status = std::process::Command::new("ip")
        .args(["link", "set", name, "up"])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("ip link set up failed"))
    }
}

fn set_blocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    // `cargo bench` adds `--bench`; without the four arguments this is a plain `cargo bench`.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let [_, kind, a, b, seconds] = &args[..] else {
        println!("tap_open: skipped; scripts/bench-tap.sh runs it (root, namespaces)");
        return Ok(());
    };
    let (a, b) = (open(kind, a)?, open(kind, b)?);
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    for (index, (from, to)) in [(a.clone(), b.clone()), (b, a)].into_iter().enumerate() {
        let counts = counts.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            loop {
                let Ok(n) = from.recv(&mut buf) else { continue };
                if to.send(&buf[..n]).is_ok() {
                    counts[index * 2].fetch_add(1, Relaxed);
                    counts[index * 2 + 1].fetch_add(n as u64, Relaxed);
                }
            }
        });
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(seconds.parse().expect("seconds")));
    let c: Vec<u64> = counts.iter().map(|c| c.load(Relaxed)).collect();
    println!(
        "{kind}: a->b {} frames {} bytes (avg {} B); b->a {} frames {} bytes",
        c[0],
        c[1],
        c[1] / c[0].max(1),
        c[2],
        c[3]
    );
    std::process::exit(0);
}
