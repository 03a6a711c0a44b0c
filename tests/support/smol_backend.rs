//! Backends for the mesh and the VIP balancer without root: a `SOCK_SEQPACKET` socket pair
//! stands for the network (one end is the device of the mesh's or the balancer's stack, the
//! other a smoltcp stack holding the backends' addresses), and the stack echoes TCP and UDP; it
//! can also dial out, as a client task would. Shared by tests/mesh.rs, tests/balancer.rs and
//! benches/mesh.rs.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use shoal::net::mesh::{DeviceOpener, Mesh, MeshConfig};
use shoal::net::routes::{
    Backend, IngressAddress, NetworkInfo, NetworkRoutes, PortKey, PublishedPort, RouteTable,
};
use shoal::net::stack::{FrameFd, Stack};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpCidr;

/// Listening sockets per backend address: smoltcp has no accept queue, so a connection can only
/// arrive while a socket listens.
const LISTENERS: usize = 8;

/// The ingress network of the tests.
pub fn ingress() -> NetworkInfo {
    NetworkInfo {
        id: "ingress".into(),
        name: "ingress".into(),
        vni: 4096,
        subnet: "10.0.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        mtu: 1450,
    }
}

/// Where the mesh listens.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The backend at 10.0.0.`last`.
pub fn backend(last: u8) -> Backend {
    Backend {
        task_id: format!("task{last}"),
        address: Ipv4Addr::new(10, 0, 0, last),
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A table publishing `ports` (each with its backends' last address bytes) through the mesh.
pub fn table(ports: &[(PortKey, &[u8], bool)]) -> Arc<RouteTable> {
    let info = ingress();
    let mut table = RouteTable {
        ingress: Some(IngressAddress {
            network_id: info.id.clone(),
            address: Ipv4Addr::new(10, 0, 0, 2),
        }),
        ..Default::default()
    };
    table.networks.insert(
        info.id.clone(),
        NetworkRoutes {
            info,
            endpoints: BTreeMap::new(),
            services: BTreeMap::new(),
        },
    );
    for (key, backends, proxy_protocol) in ports {
        table.published.insert(
            *key,
            PublishedPort {
                service_id: "svc".into(),
                target_port: 80,
                proxy_protocol: *proxy_protocol,
                backends: backends.iter().map(|b| backend(*b)).collect(),
            },
        );
    }
    Arc::new(table)
}

/// A mesh on loopback with backends at 10.0.0.x, `(last byte, listens)`.
pub fn mesh_with_backends(addresses: &[(u8, bool)], first: &Arc<RouteTable>) -> (Mesh, Backends) {
    let config = MeshConfig {
        listen: LOOPBACK,
        direct: None,
    };
    mesh_with_config(config, addresses, first, 4789, false)
}

/// A mesh made with `config`, given `first` (other nodes' data port: `data_port`), with
/// backends at 10.0.0.x, `(last byte, listens)`, behind its device (with virtio-net headers on
/// both ends if `vnet_header`, so that both stacks take super-frames).
pub fn mesh_with_config(
    config: MeshConfig,
    addresses: &[(u8, bool)],
    first: &Arc<RouteTable>,
    data_port: u16,
    vnet_header: bool,
) -> (Mesh, Backends) {
    let opener = PairOpener {
        far_end: Arc::default(),
        vnet_header,
    };
    let far_end = opener.far_end.clone();
    let mesh = Mesh::start_with(config, opener).unwrap();
    mesh.install(first.clone(), data_port).unwrap();
    let link = far_end
        .lock()
        .unwrap()
        .take()
        .expect("the mesh opened its device");
    let addresses: Vec<(Ipv4Addr, bool)> = addresses
        .iter()
        .map(|(last, listens)| (Ipv4Addr::new(10, 0, 0, *last), *listens))
        .collect();
    (mesh, Backends::start(link, &addresses, 80))
}

/// Hands the mesh one end of a socket pair and keeps the other for the backends.
pub struct PairOpener {
    /// The backends' end of the last pair opened.
    pub far_end: Arc<Mutex<Option<FrameFd>>>,
    /// Whether frames on the pair carry virtio-net headers.
    pub vnet_header: bool,
}

impl DeviceOpener for PairOpener {
    fn open(&self, _: &NetworkInfo) -> io::Result<FrameFd> {
        let (near, far) =
            socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
        near.set_nonblocking(true)?;
        far.set_nonblocking(true)?;
        let (near, far) = (OwnedFd::from(near), OwnedFd::from(far));
        let vnet_header = self.vnet_header;
        *self.far_end.lock().unwrap() = Some(FrameFd {
            fd: far,
            vnet_header,
        });
        Ok(FrameFd {
            fd: near,
            vnet_header,
        })
    }
}

/// A smoltcp stack answering at some addresses: TCP echo on `port` where it listens, a reset
/// where it does not, UDP echo on `port` everywhere.
pub struct Backends {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Connections to make, taken by the thread.
    dials: Arc<Mutex<Vec<Dial>>>,
    /// Datagrams to send, taken by the thread.
    asks: Arc<Mutex<Vec<Ask>>>,
    /// Connections each address served to their end.
    served: Arc<Mutex<BTreeMap<Ipv4Addr, usize>>>,
}

/// A connection the stack makes as a client: it sends `data`, ends its side, and gives back
/// everything received until the other side ended (or reset) the connection.
struct Dial {
    from: Ipv4Addr,
    to: SocketAddrV4,
    data: Vec<u8>,
    received: mpsc::Sender<Vec<u8>>,
}

/// A datagram the stack sends as a client: the first datagram back goes to `reply`.
struct Ask {
    from: Ipv4Addr,
    to: SocketAddrV4,
    data: Vec<u8>,
    reply: mpsc::Sender<Vec<u8>>,
}

/// A dial in progress: its socket and how much of its data went out.
struct Dialing {
    socket: SocketHandle,
    dial: Dial,
    sent: usize,
    received: Vec<u8>,
}

impl Backends {
    /// Starts the backends on `link` at `addresses`, each `(address, listens on TCP)`.
    pub fn start(link: FrameFd, addresses: &[(Ipv4Addr, bool)], port: u16) -> Backends {
        let mut stack = Stack::new(&ingress(), addresses[0].0, link);
        stack.iface.update_ip_addrs(|addrs| {
            for (address, _) in &addresses[1..] {
                addrs.push(IpCidr::new((*address).into(), 24)).unwrap();
            }
        });
        let mut listeners: Vec<(SocketHandle, Ipv4Addr)> = Vec::new();
        for (address, listens) in addresses {
            for _ in 0..LISTENERS.min(if *listens { LISTENERS } else { 0 }) {
                let mut socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 256 << 10]),
                    tcp::SocketBuffer::new(vec![0; 256 << 10]),
                );
                socket.set_ack_delay(None);
                socket.set_nagle_enabled(false);
                socket.listen((*address, port)).unwrap();
                listeners.push((stack.sockets.add(socket), *address));
            }
        }
        let mut echo = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 65536]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 65536]),
        );
        echo.bind(port).unwrap();
        let echo = stack.sockets.add(echo);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let dials: Arc<Mutex<Vec<Dial>>> = Arc::default();
        let new_dials = dials.clone();
        let asks: Arc<Mutex<Vec<Ask>>> = Arc::default();
        let new_asks = asks.clone();
        let served: Arc<Mutex<BTreeMap<Ipv4Addr, usize>>> = Arc::default();
        let counted = served.clone();
        let thread = std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65536];
            let mut dialing: Vec<Dialing> = Vec::new();
            let mut asking: Vec<(SocketHandle, mpsc::Sender<Vec<u8>>)> = Vec::new();
            let mut next_port = 40000;
            while !stopping.load(Ordering::Relaxed) {
                for dial in new_dials.lock().unwrap().drain(..) {
                    next_port += 1;
                    let mut socket = tcp::Socket::new(
                        tcp::SocketBuffer::new(vec![0; 256 << 10]),
                        tcp::SocketBuffer::new(vec![0; 256 << 10]),
                    );
                    socket
                        .connect(stack.iface.context(), dial.to, (dial.from, next_port))
                        .unwrap();
                    let socket = stack.sockets.add(socket);
                    dialing.push(Dialing {
                        socket,
                        dial,
                        sent: 0,
                        received: Vec::new(),
                    });
                }
                for ask in new_asks.lock().unwrap().drain(..) {
                    next_port += 1;
                    let buffer = || {
                        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 8192])
                    };
                    let mut socket = udp::Socket::new(buffer(), buffer());
                    socket.bind((ask.from, next_port)).unwrap();
                    socket.send_slice(&ask.data, ask.to).unwrap();
                    asking.push((stack.sockets.add(socket), ask.reply));
                }
                asking.retain(|(socket, reply)| {
                    let socket = stack.sockets.get_mut::<udp::Socket>(*socket);
                    let Ok((data, _)) = socket.recv() else {
                        return true;
                    };
                    let _ = reply.send(data.to_vec());
                    false
                });
                dialing.retain_mut(|d| {
                    let socket = stack.sockets.get_mut::<tcp::Socket>(d.socket);
                    if socket.can_send() && d.sent < d.dial.data.len() {
                        d.sent += socket.send_slice(&d.dial.data[d.sent..]).unwrap();
                    }
                    if d.sent == d.dial.data.len() && socket.may_send() {
                        socket.close();
                    }
                    while let Ok(n @ 1..) = socket.recv_slice(&mut buffer) {
                        d.received.extend_from_slice(&buffer[..n]);
                    }
                    let ended = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait)
                        || (socket.state() != tcp::State::SynSent
                            && !socket.may_recv()
                            && !socket.can_recv());
                    if ended {
                        socket.abort();
                        let _ = d.dial.received.send(std::mem::take(&mut d.received));
                    }
                    !ended
                });
                let delay = stack
                    .poll_delay()
                    .map_or(10, |d| d.as_millis().min(10) as i32);
                let mut pollfd = libc::pollfd {
                    fd: stack.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pollfd, 1, delay) };
                stack.poll();
                for (handle, address) in &listeners {
                    let socket = stack.sockets.get_mut::<tcp::Socket>(*handle);
                    while socket.can_recv() && socket.can_send() {
                        let room = (socket.send_capacity() - socket.send_queue()).min(buffer.len());
                        let n = socket.recv_slice(&mut buffer[..room]).unwrap();
                        socket.send_slice(&buffer[..n]).unwrap();
                    }
                    if socket.state() == tcp::State::CloseWait && socket.send_queue() == 0 {
                        socket.close();
                    }
                    if !socket.is_open() {
                        *counted.lock().unwrap().entry(*address).or_default() += 1;
                        socket.listen((*address, port)).unwrap();
                    }
                }
                let socket = stack.sockets.get_mut::<udp::Socket>(echo);
                while let Ok((n, meta)) = socket.recv_slice(&mut buffer) {
                    let _ = socket.send_slice(&buffer[..n], meta.endpoint);
                }
                stack.poll();
            }
        });
        Backends {
            stop,
            thread: Some(thread),
            dials,
            asks,
            served,
        }
    }

    /// Sends `data` in a datagram from `from` (one of the stack's addresses) to `to`; the
    /// receiver gets the first datagram back.
    #[allow(dead_code)] // tests/balancer.rs's
    pub fn ask(&self, from: Ipv4Addr, to: SocketAddrV4, data: Vec<u8>) -> mpsc::Receiver<Vec<u8>> {
        let (reply, receiver) = mpsc::channel();
        self.asks.lock().unwrap().push(Ask {
            from,
            to,
            data,
            reply,
        });
        receiver
    }

    /// Connects from `from` (one of the stack's addresses) to `to`, sends `data` and ends its
    /// side; the receiver gets everything that came back once the other side ended.
    #[allow(dead_code)] // tests/balancer.rs's
    pub fn dial(&self, from: Ipv4Addr, to: SocketAddrV4, data: Vec<u8>) -> mpsc::Receiver<Vec<u8>> {
        let (received, receiver) = mpsc::channel();
        self.dials.lock().unwrap().push(Dial {
            from,
            to,
            data,
            received,
        });
        receiver
    }

    /// How many connections each address served to their end.
    #[allow(dead_code)] // tests/balancer.rs's
    pub fn served(&self) -> BTreeMap<Ipv4Addr, usize> {
        self.served.lock().unwrap().clone()
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
