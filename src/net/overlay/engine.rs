//! The engine: one OS thread per queue, each moving frames between its queue of every
//! network's local port and its own UDP socket on the data port.
//!
//! Threads read the forwarding state (compiled FDB and open ports) from an `ArcSwap` only when
//! woken through their eventfd after [`Engine::install`]; the hot loops take no lock, allocate
//! nothing and log nothing.

use std::collections::BTreeMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use socket2::SockAddr;

use crate::net::routes::{NetworkInfo, RouteTable};

use super::arp;
use super::coalesce::{Coalescer, MAX_SUPER_FRAME, Push};
use super::counters::{
    EngineCounters, EngineDrop, EngineDropCounters, NetworkCounters, NetworkDrop,
};
use super::fdb::{Destination, Fdb, NetworkFdb};
use super::frame::{ETHERNET_HEADER_LEN, ETHERTYPE_ARP, ethertype};
use super::port::{LocalPort, PortOpener};
use super::segment::{complete_checksum, segment};
use super::tap::TapOpener;
use super::udp::UnderlaySocket;
use super::wire::{VNET_HEADER_LEN, VXLAN_HEADER_LEN, VnetHeader, VxlanPacket, WireError};

/// Frames or datagram buffers handled from one descriptor before the others get a turn.
const BUDGET: usize = 64;
/// How long [`Engine::install`] waits for every thread to take a new state.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for the segments of one super-frame: 64 KB of payload plus the repeated headers of up
/// to ~200 segments; anything needing more is dropped as malformed.
const SEGMENT_BUFFER: usize = 128 << 10;
/// A zero virtio-net header, for frames written as they are.
const PLAIN: [u8; VNET_HEADER_LEN] = [0; VNET_HEADER_LEN];

/// How to run an engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// This node's ID in the RouteTable.
    pub local_node: String,
    /// Underlay address and data port (4789 by default) to receive on; peers are sent to on
    /// the same port at their RouteTable address.
    pub listen: SocketAddr,
    /// Worker threads, which is also TAP queues per network; 0 means one per available core.
    pub queues: usize,
}

impl EngineConfig {
    /// A configuration with one queue per available core.
    pub fn new(local_node: impl Into<String>, listen: SocketAddr) -> EngineConfig {
        EngineConfig {
            local_node: local_node.into(),
            listen,
            queues: 0,
        }
    }

    fn queue_count(&self) -> usize {
        match self.queues {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// The per-node overlay forwarding engine (see the module documentation).
pub struct Engine {
    config: EngineConfig,
    opener: Box<dyn PortOpener>,
    shared: Arc<Shared>,
    workers: Vec<WorkerHandle>,
    installed: Mutex<Installed>,
}

/// What the engine and its threads share.
struct Shared {
    state: ArcSwap<State>,
    stop: AtomicBool,
    /// The generation of the state each thread forwards with.
    seen: Vec<AtomicU64>,
    drops: EngineDropCounters,
}

/// What the threads forward with; replaced whole by [`Engine::install`].
#[derive(Default)]
struct State {
    generation: u64,
    fdb: Arc<Fdb>,
    /// By FDB network index; `None` while a network's port is not open.
    ports: Vec<Option<Arc<LocalPort>>>,
    /// By FDB network index.
    counters: Vec<Arc<NetworkCounters>>,
}

/// The networks whose ports are open, by network ID.
#[derive(Default)]
struct Installed {
    generation: u64,
    networks: BTreeMap<String, InstalledNetwork>,
}

struct InstalledNetwork {
    info: NetworkInfo,
    port: Arc<LocalPort>,
    counters: Arc<NetworkCounters>,
}

struct WorkerHandle {
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the engine with TAP devices as local ports: binds one UDP socket per queue and
    /// starts the threads. No network is installed yet.
    pub fn start(config: EngineConfig) -> io::Result<Engine> {
        Self::start_with(config, TapOpener)
    }

    /// Starts the engine with `opener` providing the local ports (tests use in-memory ones).
    pub fn start_with(config: EngineConfig, opener: impl PortOpener) -> io::Result<Engine> {
        let queues = config.queue_count();
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(State::default()),
            stop: AtomicBool::new(false),
            seen: (0..queues).map(|_| AtomicU64::new(0)).collect(),
            drops: EngineDropCounters::default(),
        });
        let mut engine = Engine {
            config: config.clone(),
            opener: Box::new(opener),
            shared: shared.clone(),
            workers: Vec::with_capacity(queues),
            installed: Mutex::new(Installed::default()),
        };
        for index in 0..queues {
            let socket = UnderlaySocket::bind(config.listen)?;
            if index == 0 && queues > 1 {
                socket.spread_by_inner_flow(queues as u32)?;
            }
            let wake = Arc::new(eventfd()?);
            let mut worker = Worker::new(index, shared.clone(), socket, wake.clone());
            let thread = std::thread::Builder::new()
                .name(format!("overlay-{index}"))
                .spawn(move || worker.run())?;
            engine.workers.push(WorkerHandle {
                wake,
                thread: Some(thread),
            });
        }
        Ok(engine)
    }

    /// Installs a new RouteTable snapshot: opens the TAP (all queues) of each network new to
    /// this node, MTU = `info.mtu`, up; closes TAPs of networks gone (or whose facts changed,
    /// before reopening them); swaps the compiled FDB in. Returns once every thread forwards
    /// with the new table and closed ports are closed, so the caller can enslave a new TAP to
    /// its bridge right after. On a port that fails to open, the rest is installed anyway and
    /// the first error returned.
    pub fn install(&self, table: Arc<RouteTable>) -> io::Result<()> {
        let mut installed = self.installed.lock().unwrap_or_else(|e| e.into_inner());
        let fdb = Arc::new(Fdb::compile(
            &table,
            &self.config.local_node,
            self.config.listen.port(),
        ));
        let before = installed.networks.len();
        installed
            .networks
            .retain(|id, n| table.networks.get(id).map(|r| &r.info) == Some(&n.info));
        if installed.networks.len() != before {
            // Threads must let go of the old ports before a changed one can be reopened.
            self.publish(&mut installed, &fdb)?;
        }
        let mut result = Ok(());
        for (id, routes) in &table.networks {
            if installed.networks.contains_key(id) {
                continue;
            }
            match self.opener.open(&routes.info, self.workers.len()) {
                Ok(port) => {
                    installed.networks.insert(
                        id.clone(),
                        InstalledNetwork {
                            info: routes.info.clone(),
                            port: Arc::new(port),
                            counters: Arc::default(),
                        },
                    );
                }
                Err(e) if result.is_ok() => {
                    result = Err(io::Error::new(
                        e.kind(),
                        format!("opening the port of network {id}: {e}"),
                    ));
                }
                Err(_) => {}
            }
        }
        self.publish(&mut installed, &fdb)?;
        result
    }

    /// Counters per network ID, plus engine-wide drops.
    pub fn counters(&self) -> EngineCounters {
        let installed = self.installed.lock().unwrap_or_else(|e| e.into_inner());
        EngineCounters {
            networks: installed
                .networks
                .iter()
                .map(|(id, n)| (id.clone(), n.counters.snapshot()))
                .collect(),
            drops: self.shared.drops.snapshot(),
        }
    }

    /// Swaps in a state made of `fdb` and the installed ports, then waits until every thread
    /// has taken it.
    fn publish(&self, installed: &mut Installed, fdb: &Arc<Fdb>) -> io::Result<()> {
        installed.generation += 1;
        let generation = installed.generation;
        let by_id = |info: &NetworkInfo| installed.networks.get(&info.id);
        let networks = fdb.networks();
        self.shared.state.store(Arc::new(State {
            generation,
            fdb: fdb.clone(),
            ports: networks
                .iter()
                .map(|n| by_id(&n.info).map(|i| i.port.clone()))
                .collect(),
            counters: networks
                .iter()
                .map(|n| by_id(&n.info).map_or_else(Arc::default, |i| i.counters.clone()))
                .collect(),
        }));
        self.wake_all();
        let deadline = Instant::now() + INSTALL_TIMEOUT;
        while self
            .shared
            .seen
            .iter()
            .any(|s| s.load(Ordering::Acquire) < generation)
        {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "overlay threads did not take the new route table",
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    fn wake_all(&self) {
        for worker in &self.workers {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a u64 to an eventfd; a full counter cannot happen
            // (the thread drains it) and would only mean it is already woken.
            unsafe {
                libc::write(
                    worker.wake.as_raw_fd(),
                    (&one as *const u64).cast(),
                    size_of::<u64>(),
                )
            };
        }
    }
}

impl Drop for Engine {
    /// Stops the threads, then closes every port (TAPs disappear with their last queue).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.wake_all();
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
        self.shared.state.store(Arc::default());
    }
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall, result checked.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Packets and bytes received for one network, added to its counters when the network changes
/// or the batch ends.
#[derive(Clone, Copy)]
struct Tally {
    network: usize,
    packets: u64,
    bytes: u64,
}

/// One queue thread and its buffers.
struct Worker {
    index: usize,
    shared: Arc<Shared>,
    socket: UnderlaySocket,
    wake: Arc<OwnedFd>,
    state: Arc<State>,
    /// Wakeup eventfd, UDP socket, then this queue of every open port.
    pollfds: Vec<libc::pollfd>,
    /// The network index of each pollfd after the first two.
    polled_networks: Vec<usize>,
    /// Frames read from a port, behind headroom for the VXLAN header.
    port_buffer: Box<[u8]>,
    /// Datagrams cut from a super-frame.
    segment_buffer: Box<[u8]>,
    /// Datagrams received (several with GRO).
    udp_buffer: Box<[u8]>,
    coalescer: Coalescer,
    /// The network whose frame is pending in the coalescer.
    coalescing: usize,
    tally: Option<Tally>,
}

impl Worker {
    fn new(index: usize, shared: Arc<Shared>, socket: UnderlaySocket, wake: Arc<OwnedFd>) -> Self {
        Worker {
            index,
            state: shared.state.load_full(),
            shared,
            socket,
            wake,
            pollfds: Vec::new(),
            polled_networks: Vec::new(),
            // Headroom for a VXLAN header in front of the frame, the largest super-frame, and
            // one byte more to tell a frame that fills the buffer from one that was cut.
            port_buffer: vec![0; VNET_HEADER_LEN + MAX_SUPER_FRAME + 1].into_boxed_slice(),
            segment_buffer: vec![0; SEGMENT_BUFFER].into_boxed_slice(),
            udp_buffer: vec![0; 65536].into_boxed_slice(),
            coalescer: Coalescer::new(),
            coalescing: 0,
            tally: None,
        }
    }

    fn run(&mut self) {
        self.reload();
        loop {
            // SAFETY: `pollfds` is a valid array of its length.
            let ready = unsafe {
                libc::poll(
                    self.pollfds.as_mut_ptr(),
                    self.pollfds.len() as libc::nfds_t,
                    -1,
                )
            };
            if ready < 0 {
                continue; // EINTR
            }
            if self.pollfds[0].revents != 0 {
                let mut count = 0u64;
                // SAFETY: reading the 8-byte counter of our own eventfd.
                unsafe { libc::read(self.wake.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
                if self.shared.stop.load(Ordering::Acquire) {
                    return;
                }
                self.reload();
                continue;
            }
            if self.pollfds[1].revents != 0 {
                self.drain_socket();
            }
            for i in 2..self.pollfds.len() {
                let revents = self.pollfds[i].revents;
                if revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                    // The port broke (its device was deleted under us): stop polling it until
                    // the next table, rather than spin on an error that stays.
                    self.pollfds[i].fd = -1;
                } else if revents != 0 {
                    self.drain_port(self.polled_networks[i - 2]);
                }
            }
        }
    }

    /// Takes the current state, rebuilds the poll set and says so.
    fn reload(&mut self) {
        self.state = self.shared.state.load_full();
        let pollfd = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        self.pollfds.clear();
        self.polled_networks.clear();
        self.pollfds.push(pollfd(self.wake.as_raw_fd()));
        self.pollfds.push(pollfd(self.socket.fd()));
        for (network, port) in self.state.ports.iter().enumerate() {
            // A port with fewer queues than threads is read by the first threads only.
            if let Some(port) = port.as_ref().filter(|p| self.index < p.queue_count()) {
                self.pollfds.push(pollfd(port.fd(self.index)));
                self.polled_networks.push(network);
            }
        }
        self.shared.seen[self.index].store(self.state.generation, Ordering::Release);
    }

    // ---- local port -> overlay ----

    fn drain_port(&mut self, network: usize) {
        let state = self.state.clone();
        let Some(port) = state.ports[network].as_deref() else {
            return;
        };
        let net = &state.fdb.networks()[network];
        let counters = &state.counters[network];
        // Read so that the VXLAN header fits right before the frame: over the virtio-net header
        // when there is one, in headroom when not.
        let (read_at, frame_at) = if port.has_vnet_header() {
            (0, VNET_HEADER_LEN)
        } else {
            (VXLAN_HEADER_LEN, VXLAN_HEADER_LEN)
        };
        for _ in 0..BUDGET {
            let len = match port.read(self.index, &mut self.port_buffer[read_at..]) {
                Ok(len) => len,
                Err(_) => return, // drained (EAGAIN) or the port is going away
            };
            let end = read_at + len;
            if end == self.port_buffer.len() {
                // Filled to the brim: the frame was probably cut short.
                counters.dropped(NetworkDrop::Malformed, 1);
                continue;
            }
            let vnet = if port.has_vnet_header() {
                match VnetHeader::parse(&self.port_buffer[..end]) {
                    Ok(vnet) => vnet,
                    Err(_) => {
                        counters.dropped(NetworkDrop::Malformed, 1);
                        continue;
                    }
                }
            } else {
                VnetHeader::default()
            };
            if end < frame_at + ETHERNET_HEADER_LEN {
                counters.dropped(NetworkDrop::Malformed, 1);
                continue;
            }
            self.forward_from_port(net, port, counters, frame_at, end, &vnet);
        }
    }

    /// Forwards the frame at `port_buffer[frame_at..end]` read from `net`'s port.
    fn forward_from_port(
        &mut self,
        net: &NetworkFdb,
        port: &LocalPort,
        counters: &NetworkCounters,
        frame_at: usize,
        end: usize,
        vnet: &VnetHeader,
    ) {
        let frame = &self.port_buffer[frame_at..end];
        let destination: [u8; 6] = frame[..6].try_into().expect("6 bytes");
        if ethertype(frame) == Some(ETHERTYPE_ARP) {
            let mut reply = [0u8; VNET_HEADER_LEN + arp::ARP_REPLY_LEN];
            match arp::answer(frame, net, &mut reply[VNET_HEADER_LEN..]) {
                Some(len) => {
                    let skip = if port.has_vnet_header() {
                        0
                    } else {
                        VNET_HEADER_LEN
                    };
                    let reply = &reply[skip..VNET_HEADER_LEN + len];
                    if port.write(self.index, &[IoSlice::new(reply)]).is_err() {
                        counters.dropped(NetworkDrop::PortWriteFailed, 1);
                    }
                }
                None => counters.dropped(NetworkDrop::UnansweredArp, 1),
            }
            return;
        }
        let unicast: [SocketAddr; 1];
        let peers: &[SocketAddr] = if destination[0] & 1 != 0 {
            if destination[..2] == [0x33, 0x33] {
                counters.dropped(NetworkDrop::Ipv6Multicast, 1);
                return;
            }
            &net.flood
        } else {
            match net.destination(&destination) {
                Destination::Remote(peer) => {
                    unicast = [peer];
                    &unicast
                }
                Destination::Local | Destination::Balancer => {
                    counters.dropped(NetworkDrop::LocalDestination, 1);
                    return;
                }
                Destination::Unknown => &net.flood,
            }
        };
        if peers.is_empty() {
            return;
        }
        // Build the datagrams: one in place (VXLAN header over the headroom), or a segmented
        // run in the segment buffer.
        let (datagrams, segment_len, count) = if vnet.gso() == 0 {
            let frame = &mut self.port_buffer[frame_at..end];
            if complete_checksum(frame, vnet).is_err() {
                counters.dropped(NetworkDrop::Malformed, 1);
                return;
            }
            let start = frame_at - VXLAN_HEADER_LEN;
            self.port_buffer[start..frame_at].copy_from_slice(&net.vxlan_header);
            (&self.port_buffer[start..end], end - start, 1)
        } else {
            let frame = &self.port_buffer[frame_at..end];
            match segment(frame, vnet, &net.vxlan_header, &mut self.segment_buffer) {
                Ok(run) => (&self.segment_buffer[..run.len], run.segment_len, run.count),
                Err(_) => {
                    counters.dropped(NetworkDrop::Malformed, 1);
                    return;
                }
            }
        };
        let mut sent = false;
        for peer in peers {
            let to = SockAddr::from(*peer);
            match self.socket.send_run(datagrams, segment_len, &to) {
                Ok(()) => sent = true,
                Err(_) => counters.dropped(NetworkDrop::SendFailed, count as u64),
            }
        }
        if sent {
            let inner_bytes = datagrams.len() - count * VXLAN_HEADER_LEN;
            counters.sent(count as u64, inner_bytes as u64);
        }
    }

    // ---- overlay -> local port ----

    fn drain_socket(&mut self) {
        let state = self.state.clone();
        for _ in 0..BUDGET {
            let received = match self.socket.recv(&mut self.udp_buffer) {
                Ok(Some(received)) => received,
                Ok(None) => break,
                Err(_) => continue, // e.g. ICMP errors reported on the socket
            };
            let datagrams = received.len.div_ceil(received.segment_len.max(1)) as u64;
            if !state.fdb.is_cluster_node(received.source.ip()) {
                self.shared
                    .drops
                    .dropped(EngineDrop::NotClusterNode, datagrams);
                continue;
            }
            let buffer = std::mem::take(&mut self.udp_buffer);
            for datagram in buffer[..received.len].chunks(received.segment_len.max(1)) {
                self.forward_from_overlay(&state, datagram);
            }
            self.udp_buffer = buffer;
        }
        self.flush(&state);
        self.count_received(&state);
    }

    /// Checks one datagram from a cluster node and passes its frame to the local port.
    fn forward_from_overlay(&mut self, state: &State, datagram: &[u8]) {
        let drops = &self.shared.drops;
        let packet = match VxlanPacket::new_checked(datagram) {
            Ok(packet) => packet,
            Err(WireError::BadFlags) => return drops.dropped(EngineDrop::BadFlags, 1),
            Err(_) => return drops.dropped(EngineDrop::Malformed, 1),
        };
        let Some(network) = state.fdb.network_index(packet.vni()) else {
            return drops.dropped(EngineDrop::UnknownVni, 1);
        };
        let frame = packet.payload();
        if frame.len() < ETHERNET_HEADER_LEN {
            return drops.dropped(EngineDrop::Malformed, 1);
        }
        let counters = &state.counters[network];
        let net = &state.fdb.networks()[network];
        let destination: [u8; 6] = frame[..6].try_into().expect("6 bytes");
        // Unicast must be for a task here: never relay to a third node or back.
        if destination[0] & 1 == 0 && net.destination(&destination) != Destination::Local {
            return counters.dropped(NetworkDrop::NotForThisNode, 1);
        }
        let source: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        if net.destination(&source) == Destination::Balancer {
            return counters.dropped(NetworkDrop::FromBalancerAddress, 1);
        }
        let Some(port) = state.ports[network].as_deref() else {
            return counters.dropped(NetworkDrop::PortWriteFailed, 1);
        };
        self.tally(state, network, frame.len());
        if !port.has_vnet_header() {
            return self.write_frame(state, network, &[IoSlice::new(frame)]);
        }
        if !self.coalescer.is_empty() && self.coalescing != network {
            self.flush(state);
        }
        if self.coalescer.push(frame) == Push::Absorbed {
            self.coalescing = network;
            return;
        }
        self.flush(state);
        if self.coalescer.push(frame) == Push::Absorbed {
            self.coalescing = network;
        } else {
            self.write_frame(state, network, &[IoSlice::new(&PLAIN), IoSlice::new(frame)]);
        }
    }

    /// Writes the pending super-frame, if any.
    fn flush(&mut self, state: &State) {
        let network = self.coalescing;
        if let Some(frame) = self.coalescer.take()
            && let Some(port) = state.ports[network].as_deref()
            && port.write(self.index, &[IoSlice::new(frame)]).is_err()
        {
            state.counters[network].dropped(NetworkDrop::PortWriteFailed, 1);
        }
    }

    fn write_frame(&self, state: &State, network: usize, parts: &[IoSlice<'_>]) {
        if let Some(port) = state.ports[network].as_deref()
            && port.write(self.index, parts).is_err()
        {
            state.counters[network].dropped(NetworkDrop::PortWriteFailed, 1);
        }
    }

    fn tally(&mut self, state: &State, network: usize, bytes: usize) {
        match &mut self.tally {
            Some(t) if t.network == network => {
                t.packets += 1;
                t.bytes += bytes as u64;
            }
            _ => {
                self.count_received(state);
                self.tally = Some(Tally {
                    network,
                    packets: 1,
                    bytes: bytes as u64,
                });
            }
        }
    }

    fn count_received(&mut self, state: &State) {
        if let Some(t) = self.tally.take() {
            state.counters[t.network].received(t.packets, t.bytes);
        }
    }
}
