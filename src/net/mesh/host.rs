//! Host-mode published ports (`--publish published=8081,target=80,mode=host`): the port is bound
//! only on a node running a task of the service, and forwarded straight to that task, with no
//! mesh and no overlay in between.
//!
//! A [`HostForwarder`] listens on `0.0.0.0:published` in the node's own namespace and reaches the
//! task at `127.0.0.1:target` *inside the task's network namespace*: a socket belongs for its
//! whole life to the namespace it was made in, whichever thread uses it later, so a thread that
//! has joined the task's namespace makes the sockets and the daemon's runtime does the rest. The
//! task needs no address of its own for this (a task on no network has only `lo`) and no
//! iptables rule is involved. TCP connections are copied both ways; UDP gets one socket in the
//! task's namespace per client address, whose replies go back to that client, until the flow has
//! been idle for a while.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::net::routes::Protocol;

/// How long a UDP flow lives with no datagram either way (the kernel's conntrack keeps an
/// answered UDP flow as long).
pub const UDP_IDLE: Duration = Duration::from_secs(120);

/// Pending connections the kernel queues on a listening port.
const BACKLOG: i32 = 1024;
/// Pause after a failed accept (out of descriptors, say), so the loop does not spin on it.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65507;

/// A port published in host mode: bound on this node, forwarded to one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port on this node; 0 lets the kernel pick a free one.
    pub published: u16,
    /// The port the task listens on (on its loopback or on every address).
    pub target: u16,
}

/// One host-mode port being forwarded into a task's namespace; the port closes when this is
/// stopped or dropped.
#[derive(Debug)]
pub struct HostForwarder {
    local: SocketAddr,
    /// Tells the loop to close everything and return.
    stop: Option<oneshot::Sender<()>>,
    /// The accept (TCP) or relay (UDP) loop; it owns the listening socket and every
    /// connection or flow.
    task: JoinHandle<()>,
}

impl HostForwarder {
    /// Binds `port.published` on every address of this node (for TCP with SO_REUSEADDR, so a
    /// port whose earlier connections linger in TIME_WAIT can be bound again) and forwards to `port.target` on the
    /// loopback of the network namespace at `netns` (a task's `/proc/<pid>/ns/net`). UDP flows
    /// end after `udp_idle` without a datagram (normally [`UDP_IDLE`]). Fails when the port
    /// cannot be bound or the namespace cannot be entered. Must be called inside a tokio
    /// runtime.
    pub async fn start(
        port: HostPort,
        netns: &Path,
        udp_idle: Duration,
    ) -> io::Result<HostForwarder> {
        let sockets = NetnsSockets::open(netns).await?;
        let (stop, stopped) = oneshot::channel();
        let bind = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port.published));
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port.target));
        let (local, task) = match port.protocol {
            Protocol::Tcp => {
                let listener = listening_socket(Type::STREAM, bind)?;
                listener.listen(BACKLOG)?;
                let listener = TcpListener::from_std(listener.into())?;
                let local = listener.local_addr()?;
                (
                    local,
                    tokio::spawn(serve_tcp(listener, sockets, target, stopped)),
                )
            }
            Protocol::Udp => {
                let listener = UdpSocket::from_std(listening_socket(Type::DGRAM, bind)?.into())?;
                let local = listener.local_addr()?;
                let relay = serve_udp(listener, sockets, target, udp_idle, stopped);
                (local, tokio::spawn(relay))
            }
        };
        Ok(HostForwarder {
            local,
            stop: Some(stop),
            task,
        })
    }

    /// The address the port is bound to on this node (with the port the kernel picked if the
    /// published port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Closes the port and ends every connection and flow through it; returns once the port is
    /// closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for HostForwarder {
    /// Dropped without [`HostForwarder::stop`] (the daemon is going away): the loop and
    /// everything it owns go at the runtime's next turn.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A nonblocking socket bound to `bind` in the calling thread's namespace.
fn listening_socket(kind: Type, bind: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, kind, None)?;
    // Not for UDP: there it would let a second socket bind the same port and take its
    // datagrams, where a clash must be an error.
    socket.set_reuse_address(kind == Type::STREAM)?;
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    Ok(socket)
}

/// A socket request: the kind of socket, and where to send it.
type SocketRequest = (Type, oneshot::Sender<io::Result<Socket>>);

/// A thread inside a task's network namespace that makes sockets there on request.
///
/// It is a thread of the forwarder's own rather than one of tokio's blocking pool: `setns`
/// moves only the calling thread, and a pool thread left in the task's namespace would make
/// some later, unrelated socket there. The thread ends when this is dropped.
struct NetnsSockets {
    requests: mpsc::Sender<SocketRequest>,
}

impl NetnsSockets {
    /// Starts the thread and waits until it has joined the namespace at `netns`.
    async fn open(netns: &Path) -> io::Result<NetnsSockets> {
        let file = File::open(netns)?;
        let (joined, has_joined) = oneshot::channel();
        let (requests, incoming) = mpsc::channel::<SocketRequest>();
        std::thread::Builder::new()
            .name("shoal-hostport".into())
            .spawn(move || {
                let entered = setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from);
                drop(file);
                let ok = entered.is_ok();
                if joined.send(entered).is_err() || !ok {
                    return;
                }
                for (kind, reply) in incoming {
                    let _ = reply.send(Socket::new(Domain::IPV4, kind, None));
                }
            })?;
        has_joined.await.map_err(|_| thread_gone())??;
        Ok(NetnsSockets { requests })
    }

    /// A new nonblocking socket of `kind` in the namespace.
    async fn socket(&self, kind: Type) -> io::Result<Socket> {
        let (reply, socket) = oneshot::channel();
        self.requests
            .send((kind, reply))
            .map_err(|_| thread_gone())?;
        let socket = socket.await.map_err(|_| thread_gone())??;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

fn thread_gone() -> io::Error {
    io::Error::other("the thread in the task's namespace has stopped")
}

/// Accepts connections and forwards each to `target` in the namespace, until `stop`; then
/// closes the port and every connection.
async fn serve_tcp(
    listener: TcpListener,
    sockets: NetnsSockets,
    target: SocketAddr,
    mut stop: oneshot::Receiver<()>,
) {
    let sockets = Arc::new(sockets);
    // Owned here, so that aborting this loop aborts every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    connections.spawn(forward_tcp(client, peer, sockets.clone(), target));
                }
                Err(e) => {
                    tracing::warn!(port = %target.port(), "host port cannot accept: {e}");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Connects to `target` from inside the namespace and copies both ways until both sides close.
async fn forward_tcp(
    mut client: TcpStream,
    peer: SocketAddr,
    sockets: Arc<NetnsSockets>,
    target: SocketAddr,
) {
    let forwarded = async {
        let socket = sockets.socket(Type::STREAM).await?;
        let mut task = TcpSocket::from_std_stream(socket.into())
            .connect(target)
            .await?;
        // A forwarder should not delay what the application already chose to send.
        task.set_nodelay(true)?;
        client.set_nodelay(true)?;
        tokio::io::copy_bidirectional(&mut client, &mut task).await
    };
    if let Err(e) = forwarded.await {
        tracing::debug!(client = %peer, %target, "host port connection ended: {e}");
    }
}

/// One client's UDP flow: its socket in the task's namespace, and when it last carried a
/// datagram either way (milliseconds since the relay started).
struct UdpFlow {
    socket: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    replies: AbortHandle,
}

/// Relays datagrams from clients to `target` in the namespace, one flow per client address, and
/// ends flows idle for `idle`; until `stop`, then closes the port and every flow.
async fn serve_udp(
    listener: UdpSocket,
    sockets: NetnsSockets,
    target: SocketAddr,
    idle: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = Arc::new(listener);
    let started = Instant::now();
    let now = move || started.elapsed().as_millis() as u64;
    let idle_ms = idle.as_millis() as u64;
    let mut flows: HashMap<SocketAddr, UdpFlow> = HashMap::new();
    // Owned here, so that aborting this loop aborts every flow's reply relay too.
    let mut relays = JoinSet::new();
    // A flow lives between `idle` and 1.25 x `idle` after its last datagram.
    let mut sweep = tokio::time::interval((idle / 4).max(Duration::from_millis(1)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = &mut stop => break,
            received = listener.recv_from(&mut buffer) => {
                let (len, client) = match received {
                    Ok(received) => received,
                    Err(e) => {
                        tracing::debug!(port = %target.port(), "host port receive failed: {e}");
                        continue;
                    }
                };
                let flow = match flows.entry(client) {
                    Entry::Occupied(flow) => flow.into_mut(),
                    Entry::Vacant(vacant) => {
                        let socket = match flow_socket(&sockets, target).await {
                            Ok(socket) => Arc::new(socket),
                            Err(e) => {
                                tracing::debug!(%client, %target, "host port cannot open a flow: {e}");
                                continue;
                            }
                        };
                        let last = Arc::new(AtomicU64::new(now()));
                        let relay = relay_replies(socket.clone(), listener.clone(), client, last.clone(), now);
                        let replies = relays.spawn(relay);
                        vacant.insert(UdpFlow { socket, last, replies })
                    }
                };
                flow.last.store(now(), Ordering::Relaxed);
                if let Err(e) = flow.socket.send(&buffer[..len]).await {
                    tracing::debug!(%client, %target, "host port cannot forward a datagram: {e}");
                }
            }
            _ = sweep.tick() => {
                let now = now();
                flows.retain(|_, flow| {
                    let live = now.saturating_sub(flow.last.load(Ordering::Relaxed)) < idle_ms;
                    if !live {
                        flow.replies.abort();
                    }
                    live
                });
            }
            Some(_) = relays.join_next() => {}
        }
    }
    // The relays hold the listening socket too; it closes with the last of them.
    relays.shutdown().await;
}

/// A UDP socket in the namespace, connected to `target`: it only hears the task's replies.
async fn flow_socket(sockets: &NetnsSockets, target: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::from_std(sockets.socket(Type::DGRAM).await?.into())?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends what the task answers on a flow's socket back to its client, through the published
/// port, until aborted.
async fn relay_replies(
    flow: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    now: impl Fn() -> u64,
) {
    // One buffer per flow, made when the flow starts, not per datagram.
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        // An error here is an ICMP error the kernel reports once (nothing listens on the
        // target yet, say): the flow itself stays usable.
        let len = match flow.recv(&mut buffer).await {
            Ok(len) => len,
            Err(e) => {
                tracing::debug!(%client, "host port flow: {e}");
                continue;
            }
        };
        last.store(now(), Ordering::Relaxed);
        if let Err(e) = listener.send_to(&buffer[..len], client).await {
            tracing::debug!(%client, "host port cannot answer a client: {e}");
        }
    }
}
