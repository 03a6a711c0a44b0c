//! Two overlay engines in one process on loopback UDP (nodes at 127.0.0.1 and 127.0.0.2 on the
//! same data port), each with an in-memory local port (a `SOCK_SEQPACKET` socket pair) instead
//! of a TAP, and a smoltcp TCP endpoint behind each port: 1 MB crosses the overlay and arrives
//! intact. With virtio-net headers on the ports, the receiving engine coalesces segments into
//! super-frames, which the test's device cuts up again as the kernel would.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use shoal::net::overlay::segment::{complete_checksum, segment};
use shoal::net::overlay::wire::{VNET_GSO_NONE, VNET_HEADER_LEN, VnetHeader, vxlan_header};
use shoal::net::overlay::{Engine, EngineConfig, LocalPort, PortOpener};
use shoal::net::routes::{Endpoint, NetworkInfo, NetworkRoutes, RouteTable, mac_for};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

const NETWORK: &str = "n1";
const VNI: u32 = 4096;

fn address(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, last)
}

/// Nodes a (127.0.0.1) and b (127.0.0.2); one network with 10.0.1.2 on a and 10.0.1.3 on b.
fn table() -> RouteTable {
    let mut table = RouteTable::default();
    table
        .nodes
        .insert("a".into(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
    table
        .nodes
        .insert("b".into(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let endpoints: BTreeMap<Ipv4Addr, Endpoint> = [(2, "a"), (3, "b")]
        .into_iter()
        .map(|(last, node)| {
            let endpoint = Endpoint {
                address: address(last),
                mac: mac_for(address(last)),
                node_id: node.into(),
                task_id: format!("t{last}"),
                service_id: "s".into(),
            };
            (endpoint.address, endpoint)
        })
        .collect();
    table.networks.insert(
        NETWORK.into(),
        NetworkRoutes {
            info: NetworkInfo {
                id: NETWORK.into(),
                name: "net".into(),
                vni: VNI,
                subnet: "10.0.1.0/24".parse().unwrap(),
                gateway: address(1),
                mtu: 1450,
            },
            endpoints,
            services: Default::default(),
        },
    );
    table
}

/// Local ports made of socket pairs; the far ends go to the test.
#[derive(Clone, Default)]
struct PairOpener {
    vnet_header: bool,
    far_ends: Arc<Mutex<Vec<OwnedFd>>>,
}

impl PortOpener for PairOpener {
    fn open(&self, _network: &NetworkInfo, queues: usize) -> io::Result<LocalPort> {
        let mut near = Vec::new();
        for _ in 0..queues {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors; the result is checked.
            let r = unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                    fds.as_mut_ptr(),
                )
            };
            assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
            // SAFETY: both were just created and are owned by nobody else.
            let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            for fd in [&a, &b] {
                let size: libc::c_int = 1 << 20;
                // SAFETY: SO_SNDBUF reads an int.
                unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_SNDBUF,
                        (&size as *const libc::c_int).cast(),
                        4,
                    )
                };
            }
            near.push(a);
            self.far_ends.lock().unwrap().push(b);
        }
        LocalPort::new(near, self.vnet_header)
    }
}

/// A smoltcp device over the test's end of a port. With virtio-net headers it does what the
/// kernel does with a TAP: super-frames it receives are segmented, checksums completed.
struct PortDevice {
    /// The test's end of every queue: frames may come out of any, go in through the first.
    fds: Vec<OwnedFd>,
    vnet_header: bool,
    pending: VecDeque<Vec<u8>>,
    super_frames: usize,
}

impl PortDevice {
    fn fill(&mut self) {
        let mut buf = vec![0u8; 70_000];
        let Some(n) = self.fds.iter().find_map(|fd| {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            (n > 0).then_some(n)
        }) else {
            return;
        };
        let buf = &mut buf[..n as usize];
        if !self.vnet_header {
            self.pending.push_back(buf.to_vec());
            return;
        }
        let vnet = VnetHeader::parse(buf).expect("the engine writes valid virtio-net headers");
        let frame = &mut buf[VNET_HEADER_LEN..];
        if vnet.gso() == VNET_GSO_NONE {
            complete_checksum(frame, &vnet).unwrap();
            self.pending.push_back(frame.to_vec());
            return;
        }
        self.super_frames += 1;
        let mut out = vec![0u8; 140_000];
        let run = segment(frame, &vnet, &[], &mut out).expect("a valid super-frame");
        for segment in out[..run.len].chunks(run.segment_len) {
            self.pending.push_back(segment.to_vec());
        }
    }
}

struct Rx(Vec<u8>);
struct Tx<'a> {
    fd: RawFd,
    vnet_header: bool,
    _device: std::marker::PhantomData<&'a ()>,
}

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let skip = if self.vnet_header { VNET_HEADER_LEN } else { 0 };
        let mut buf = vec![0u8; skip + len];
        let r = f(&mut buf[skip..]);
        // SAFETY: `buf` is valid for reads of its length. A full queue drops the frame, as a
        // TAP would; TCP retransmits.
        unsafe { libc::send(self.fd, buf.as_ptr().cast(), buf.len(), 0) };
        r
    }
}

impl Device for PortDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        if self.pending.is_empty() {
            self.fill();
        }
        let frame = self.pending.pop_front()?;
        Some((Rx(frame), self.tx()))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(self.tx())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1450 + 14;
        caps
    }
}

impl PortDevice {
    fn tx(&self) -> Tx<'_> {
        Tx {
            fd: self.fds[0].as_raw_fd(),
            vnet_header: self.vnet_header,
            _device: std::marker::PhantomData,
        }
    }
}

/// A free UDP port on 127.0.0.1 (and, in practice, on 127.0.0.2).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts engines for nodes a and b with `queues` queues and installs the table; returns them
/// with the test's ends of each one's port.
fn two_engines(vnet_header: bool, queues: usize) -> (u16, [(Engine, Vec<OwnedFd>); 2]) {
    let port = free_port();
    let table = Arc::new(table());
    let start = |node: &str, last: u8| {
        let opener = PairOpener {
            vnet_header,
            ..PairOpener::default()
        };
        let config = EngineConfig {
            local_node: node.into(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port),
            queues,
        };
        let engine = Engine::start_with(config, opener.clone()).unwrap();
        engine.install(table.clone()).unwrap();
        let far_ends = std::mem::take(&mut *opener.far_ends.lock().unwrap());
        assert_eq!(far_ends.len(), queues);
        (engine, far_ends)
    };
    (port, [start("a", 1), start("b", 2)])
}

fn interface(device: &mut PortDevice, last: u8) -> Interface {
    let mac = EthernetAddress(mac_for(address(last)));
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(mac)),
        device,
        Instant::now(),
    );
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::Ipv4(address(last)), 24))
            .unwrap()
    });
    iface
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 << 10]),
        tcp::SocketBuffer::new(vec![0; 64 << 10]),
    )
}

/// Sends 1 MB from 10.0.1.2 (node a) to 10.0.1.3:5000 (node b); returns the devices.
fn transfer(vnet_header: bool, queues: usize) -> (Vec<u8>, Vec<u8>, [PortDevice; 2], [Engine; 2]) {
    let (_, [(engine_a, fds_a), (engine_b, fds_b)]) = two_engines(vnet_header, queues);
    let device = |fds| PortDevice {
        fds,
        vnet_header,
        pending: VecDeque::new(),
        super_frames: 0,
    };
    let (mut dev_a, mut dev_b) = (device(fds_a), device(fds_b));
    let mut iface_a = interface(&mut dev_a, 2);
    let mut iface_b = interface(&mut dev_b, 3);
    let mut sockets_a = SocketSet::new(vec![]);
    let mut sockets_b = SocketSet::new(vec![]);
    let client = sockets_a.add(tcp_socket());
    let server = sockets_b.add(tcp_socket());
    sockets_b
        .get_mut::<tcp::Socket>(server)
        .listen(5000)
        .unwrap();
    sockets_a
        .get_mut::<tcp::Socket>(client)
        .connect(
            iface_a.context(),
            (IpAddress::Ipv4(address(3)), 5000),
            40000,
        )
        .unwrap();

    let data: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut sent = 0;
    let mut received = Vec::with_capacity(data.len());
    let deadline = StdInstant::now() + Duration::from_secs(60);
    while received.len() < data.len() {
        assert!(
            StdInstant::now() < deadline,
            "stalled at {} bytes",
            received.len()
        );
        let now = Instant::now();
        iface_a.poll(now, &mut dev_a, &mut sockets_a);
        iface_b.poll(now, &mut dev_b, &mut sockets_b);
        let socket = sockets_a.get_mut::<tcp::Socket>(client);
        if socket.can_send() && sent < data.len() {
            sent += socket.send_slice(&data[sent..]).unwrap();
        }
        let socket = sockets_b.get_mut::<tcp::Socket>(server);
        while socket.can_recv() {
            socket
                .recv(|buf| {
                    received.extend_from_slice(buf);
                    (buf.len(), ())
                })
                .unwrap();
        }
        // Wait a little for either port, or for a timer.
        let mut fds: Vec<libc::pollfd> = dev_a
            .fds
            .iter()
            .chain(&dev_b.fds)
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if dev_a.pending.is_empty() && dev_b.pending.is_empty() {
            // SAFETY: a valid array of pollfds of that length.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1) };
        }
    }
    (data, received, [dev_a, dev_b], [engine_a, engine_b])
}

#[test]
fn a_megabyte_crosses_the_overlay_over_tcp() {
    let (data, received, _, [a, b]) = transfer(false, 1);
    assert!(received == data, "the data arrived changed");
    let (a, b) = (a.counters(), b.counters());
    assert!(a.networks[NETWORK].tx_packets > 700, "{a:?}");
    assert!(b.networks[NETWORK].rx_packets > 700, "{b:?}");
    assert_eq!(a.drops, Default::default());
    assert_eq!(b.drops, Default::default());
}

#[test]
fn with_virtio_headers_segments_are_coalesced_on_the_way_in() {
    let (data, received, [_, dev_b], [a, b]) = transfer(true, 1);
    assert!(received == data, "the data arrived changed");
    assert!(dev_b.super_frames > 0, "nothing was coalesced");
    let (a, b) = (a.counters(), b.counters());
    assert!(a.networks[NETWORK].tx_packets > 700, "{a:?}");
    assert!(b.networks[NETWORK].rx_packets > 700, "{b:?}");
}

#[test]
fn two_queues_per_engine_carry_it_too() {
    let (data, received, _, [a, b]) = transfer(true, 2);
    assert!(received == data, "the data arrived changed");
    assert!(a.counters().networks[NETWORK].tx_packets > 700);
    assert!(b.counters().networks[NETWORK].rx_packets > 700);
}

#[test]
fn the_engine_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
}

#[test]
fn bad_datagrams_are_dropped_and_counted() {
    let (port, [(engine_a, _fds_a), (_engine_b, _fds_b)]) = two_engines(false, 1);
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    // From node b's address (a cluster node): bad flags, unknown VNI, too short, a unicast
    // frame for a MAC that is not on node a, and a frame from the gateway's MAC.
    let from_b = UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut bad_flags = vxlan_header(VNI).to_vec();
    bad_flags[0] = 0x0c;
    bad_flags.extend_from_slice(&[0; 60]);
    let mut unknown_vni = vxlan_header(77).to_vec();
    unknown_vni.extend_from_slice(&[0; 60]);
    let short = vxlan_header(VNI)[..5].to_vec();
    let mut not_here = vxlan_header(VNI).to_vec();
    not_here.extend_from_slice(&mac_for(address(3)));
    not_here.extend_from_slice(&[0; 54]);
    // A broadcast from the gateway's MAC: only node a's own balancer sends from it on a's bridge.
    let mut from_gateway = vxlan_header(VNI).to_vec();
    from_gateway.extend_from_slice(&[0xff; 6]);
    from_gateway.extend_from_slice(&mac_for(address(1)));
    from_gateway.extend_from_slice(&[0; 48]);
    for datagram in [&bad_flags, &unknown_vni, &short, &not_here, &from_gateway] {
        from_b.send_to(datagram, target).unwrap();
    }
    // From an address that is no cluster node.
    let stranger = UdpSocket::bind("127.0.0.9:0").unwrap();
    let mut fine = vxlan_header(VNI).to_vec();
    fine.extend_from_slice(&[0xff; 60]);
    stranger.send_to(&fine, target).unwrap();

    let deadline = StdInstant::now() + Duration::from_secs(5);
    loop {
        let counters = engine_a.counters();
        let drops = counters.drops;
        let network = counters.networks[NETWORK].drops;
        if drops.bad_flags == 1
            && drops.unknown_vni == 1
            && drops.malformed == 1
            && drops.not_cluster_node == 1
            && network.not_for_this_node == 1
            && network.from_balancer_address == 1
        {
            break;
        }
        assert!(StdInstant::now() < deadline, "{counters:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn removing_a_network_closes_its_port() {
    let (_, [(engine_a, fds_a), _]) = two_engines(false, 1);
    engine_a.install(Arc::new(RouteTable::default())).unwrap();
    assert!(engine_a.counters().networks.is_empty());
    // The engine's end is closed: the test's end reads end-of-file.
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fds_a[0].as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n, 0);
}
