//! Opening a network's TAP device with direct ioctls: multi-queue, with the virtio-net header
//! and the offloads that let one read or write carry a 64 KB TCP super-frame.
//!
//! Neither `tun-tap` (no `IFF_VNET_HDR`, no multi-queue) nor a wrapper crate is needed for four
//! ioctls; see `examples/tap_bench.rs` for the comparison.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::net::routes::NetworkInfo;

use super::port::{LocalPort, PortOpener};
use super::wire::VNET_HEADER_LEN;

/// Opens TAP devices named by [`NetworkInfo::tap_name`]; needs `CAP_NET_ADMIN`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TapOpener;

impl PortOpener for TapOpener {
    fn open(&self, network: &NetworkInfo, queues: usize) -> io::Result<LocalPort> {
        open_tap(&network.tap_name(), queues, network.mtu)
    }
}

/// Opens (creating it if needed) the TAP `name` with `queues` queues, each non-blocking, with a
/// virtio-net header and checksum and TSO offloads on, then sets its MTU and brings it up. The
/// device goes away when the last queue is closed.
pub fn open_tap(name: &str, queues: usize, mtu: u16) -> io::Result<LocalPort> {
    let mut request = interface_request(name)?;
    request.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR | libc::IFF_MULTI_QUEUE) as i16;
    let mut fds = Vec::with_capacity(queues.max(1));
    for _ in 0..queues.max(1) {
        let fd = open_queue(&mut request)?;
        set_vnet_and_offloads(&fd)?;
        fds.push(fd);
    }
    set_mtu_and_up(name, mtu)?;
    LocalPort::new(fds, true)
}

/// Opens (creating it if needed) the TAP `name` with one non-blocking queue, a virtio-net header
/// and the checksum and TSO offloads, so the kernel may hand over a TCP super-frame of up to
/// 64 KB in one read; sets its MTU and brings it up. This is the daemon's own userspace stack's
/// device (`crate::net::stack`); the device goes away when the descriptor is closed.
pub fn open_stack_tap(name: &str, mtu: u16) -> io::Result<OwnedFd> {
    let mut request = interface_request(name)?;
    request.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
    let fd = open_queue(&mut request)?;
    set_vnet_and_offloads(&fd)?;
    set_mtu_and_up(name, mtu)?;
    Ok(fd)
}

/// Gives the queue `fd` a virtio-net header on every frame, and the checksum and TSO offloads.
fn set_vnet_and_offloads(fd: &OwnedFd) -> io::Result<()> {
    let header_len = VNET_HEADER_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &header_len) })?;
    let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    // SAFETY: TUNSETOFFLOAD takes the flags by value.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            offloads as libc::c_ulong,
        )
    })
}

/// Opens `/dev/net/tun` non-blocking and attaches it to the device `request` names and
/// describes (creating the device, or adding a queue to it).
fn open_queue(request: &mut libc::ifreq) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: a valid C string path; the result is checked.
    let raw = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: TUNSETIFF reads an `ifreq`, which outlives the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, request) })?;
    Ok(fd)
}

/// Sets the MTU of interface `name` and brings it up, through ioctls on a throwaway socket.
fn set_mtu_and_up(name: &str, mtu: u16) -> io::Result<()> {
    // SAFETY: plain socket creation, checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut request = interface_request(name)?;
    request.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
    // SAFETY: the interface ioctls read and write an `ifreq` that outlives each call.
    unsafe {
        check(libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCSIFMTU,
            &mut request,
        ))?;
        check(libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut request,
        ))?;
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as i16;
        check(libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &mut request,
        ))?;
    }
    Ok(())
}

/// An `ifreq` naming `name` (which must fit `IFNAMSIZ` with its terminating zero).
fn interface_request(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: `ifreq` is plain data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= request.ifr_name.len() || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (dst, src) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(request)
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
