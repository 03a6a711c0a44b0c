//! The underlay socket: one UDP socket per queue thread on the data port (`SO_REUSEPORT` spreads
//! flows over them), sending runs of equal-sized datagrams with one UDP GSO `sendmsg` and
//! receiving many datagrams per `recvmsg` with UDP GRO.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

/// The most bytes one UDP datagram (or one GSO send) over IPv4 can carry.
pub const MAX_UDP_PAYLOAD: usize = 65507;
/// The most segments one GSO send may have (`UDP_MAX_SEGMENTS` before Linux 6.9 raised it).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Socket buffer size asked for (the kernel caps it at `net.core.{r,w}mem_max`).
const SOCKET_BUFFER: usize = 4 << 20;

/// One received buffer: `len` bytes from `source`, made of datagrams of `segment_len` bytes
/// (the last possibly shorter); a buffer without GRO is one datagram.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// Length of each datagram but the last.
    pub segment_len: usize,
    /// The sender.
    pub source: SocketAddr,
}

/// A bound, non-blocking UDP socket with GSO and GRO.
#[derive(Debug)]
pub struct UnderlaySocket {
    socket: Socket,
    /// Cleared when the kernel refuses a GSO send (no checksum offload on the route's device):
    /// datagrams then go one `sendmsg` each.
    gso: bool,
}

impl UnderlaySocket {
    /// Binds to `addr` with `SO_REUSEPORT` (so each queue thread can have its own socket on the
    /// same port) and turns UDP GRO on.
    pub fn bind(addr: SocketAddr) -> io::Result<UnderlaySocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        // Best effort: small buffers cost throughput, not correctness.
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        socket.bind(&addr.into())?;
        let on: libc::c_int = 1;
        // SAFETY: UDP_GRO reads an int; the socket is open.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_GRO,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UnderlaySocket { socket, gso: true })
    }

    /// Makes the kernel hand each datagram of this socket's `SO_REUSEPORT` group to socket
    /// number (inner TCP/UDP ports mod `sockets`), in binding order, rather than by the outer
    /// 4-tuple: between two nodes that tuple is the same for every flow, which would put all
    /// of a peer's traffic on one thread. Reads the ports at their offset for an untagged
    /// IPv4 frame without options; other frames land on whatever socket those bytes pick.
    pub fn spread_by_inner_flow(&self, sockets: u32) -> io::Result<()> {
        /// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic; libc exports it for Android only).
        const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;
        /// The inner ports: VXLAN header, Ethernet header, IPv4 header.
        const INNER_PORTS: u32 = 8 + 14 + 20;
        let op = |code: u32, k: u32| libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        // The program sees the datagram from the UDP payload on; a load past its end
        // returns 0, i.e. the first socket.
        let mut program = [
            op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, INNER_PORTS),
            op(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, sockets.max(1)),
            op(libc::BPF_RET | libc::BPF_A, 0),
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: the option reads a `sock_fprog` whose program outlives the call.
        let result = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_ATTACH_REUSEPORT_CBPF,
                (&fprog as *const libc::sock_fprog).cast(),
                size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The descriptor, for polling.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Sends `buf`, a run of datagrams of `segment_len` bytes (the last possibly shorter), to
    /// `to`, in as few `sendmsg` calls as GSO allows.
    pub fn send_run(&mut self, buf: &[u8], segment_len: usize, to: &SockAddr) -> io::Result<()> {
        send_run(self.socket.as_raw_fd(), &mut self.gso, buf, segment_len, to)
    }

    /// Receives one buffer of datagrams (several if GRO merged them); `Ok(None)` when none wait.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = CmsgBuffer::new();
        let mut source = MaybeUninit::<SockAddrStorage>::zeroed();
        // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = source.as_mut_ptr().cast();
        msg.msg_namelen = size_of::<SockAddrStorage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<CmsgBuffer>() as _;
        // SAFETY: `msg` is fully initialised and its buffers are alive.
        let n = unsafe { libc::recvmsg(self.fd(), &mut msg, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let mut len = n as usize;
        let mut segment_len = len;
        // SAFETY: the kernel filled `msg_control` with well-formed cmsgs, walked with the
        // libc macros; the UDP_GRO payload is an int.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                    let size =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                    if size > 0 {
                        segment_len = size as usize;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            // The buffer was too small: keep only the datagrams that arrived whole.
            len -= len % segment_len.max(1);
        }
        // SAFETY: the kernel wrote `msg_namelen` bytes of a valid address.
        let source = unsafe { SockAddr::new(source.assume_init(), msg.msg_namelen) };
        let Some(source) = source.as_socket() else {
            return Err(io::Error::other("datagram without an IP source"));
        };
        Ok(Some(Received {
            len,
            segment_len,
            source,
        }))
    }
}

/// Sends `buf`, a run of datagrams of `segment_len` bytes (the last possibly shorter), to `to`
/// on the UDP socket `fd`, in as few `sendmsg` calls as GSO allows; `gso` is cleared when the
/// kernel refuses a GSO send (no checksum offload on the route's device), and datagrams then
/// go one `sendmsg` each.
pub fn send_run(
    fd: RawFd,
    gso: &mut bool,
    buf: &[u8],
    segment_len: usize,
    to: &SockAddr,
) -> io::Result<()> {
    if !*gso || buf.len() <= segment_len {
        return buf
            .chunks(segment_len.max(1))
            .try_for_each(|d| send(fd, d, None, to));
    }
    let per_send = (MAX_UDP_PAYLOAD / segment_len).clamp(1, MAX_GSO_SEGMENTS) * segment_len;
    for chunk in buf.chunks(per_send) {
        let size = (chunk.len() > segment_len).then_some(segment_len as u16);
        match send(fd, chunk, size, to) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) => {
                *gso = false;
                chunk
                    .chunks(segment_len)
                    .try_for_each(|d| send(fd, d, None, to))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send(fd: RawFd, buf: &[u8], gso_size: Option<u16>, to: &SockAddr) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = CmsgBuffer::new();
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = to.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = to.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(size) = gso_size {
        msg.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: the control buffer has room for one u16 cmsg and is aligned for cmsghdr.
        unsafe {
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = libc::UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
        }
    }
    // SAFETY: `msg` is fully initialised and its buffers are alive.
    let n = unsafe { libc::sendmsg(fd, &msg, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Room for the one control message either direction uses, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuffer([u8; 64]);

impl CmsgBuffer {
    fn new() -> Self {
        CmsgBuffer([0; 64])
    }
}
