//! One network as the balancer serves it: its stack, its VIPs and the connections through them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::iface::SocketHandle;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

use super::dns;
use super::dns_tcp::Sessions;
use super::event_loop::Shared;
use super::tcp::Connection;
use super::udp::UdpFlows;
use crate::net::dns::Zone;
use crate::net::mesh::maglev::{Maglev, maglev_for};
use crate::net::mesh::slab::Slab;
use crate::net::routes::{Backend, NetworkRoutes};
use crate::net::stack::Stack;

/// The balancer's stack on one network, and what goes through it.
pub struct Network {
    /// The stack: the node's balancer address, claiming the gateway and the VIPs.
    pub stack: Stack,
    /// The network's services that have a VIP, by VIP.
    pub vips: HashMap<Ipv4Addr, Vip>,
    /// Connections to VIPs, from the SYN on.
    pub connections: Slab<Connection>,
    /// UDP flows through VIPs.
    pub udp: UdpFlows,
    /// Sockets finished this turn, removed once the next egress has sent their resets, with
    /// the local port each took (backend legs only).
    pub dying: Vec<(SocketHandle, Option<u16>)>,
    /// The device has frames to read (it reports each arrival once: edge-triggered).
    pub readable: bool,
    /// The network's gateway, where DNS answers.
    pub gateway: Ipv4Addr,
    /// The DNS socket, at the gateway's port 53.
    pub dns: SocketHandle,
    /// DNS sessions over TCP.
    pub dns_tcp: Sessions,
    /// The names DNS answers on the network.
    pub zone: Zone,
}

/// A service's VIP: where its connections go.
pub struct Vip {
    /// The service's running tasks.
    pub backends: Vec<Backend>,
    /// Maglev over them.
    pub maglev: Maglev,
}

impl Network {
    /// The network of `routes` served by `stack`.
    pub fn new(mut stack: Stack, routes: &NetworkRoutes) -> Network {
        let dns = stack.sockets.add(dns::socket(routes.info.gateway));
        let mut network = Network {
            stack,
            vips: HashMap::new(),
            connections: Slab::new(),
            udp: UdpFlows::default(),
            dying: Vec::new(),
            // Whatever waits on a new device was never reported.
            readable: true,
            gateway: routes.info.gateway,
            dns,
            dns_tcp: Sessions::default(),
            zone: Zone::new(routes),
        };
        network.follow(routes);
        network
    }

    /// Takes the network's names, VIPs and backends from `routes`, and claims the VIPs and the
    /// gateway. A VIP's Maglev table is rebuilt only when its backends changed; connections
    /// already made stay with their backend.
    pub fn follow(&mut self, routes: &NetworkRoutes) {
        self.zone = Zone::new(routes);
        let mut vips = HashMap::new();
        for service in routes.services.values() {
            let Some(address) = service.vip else {
                continue;
            };
            let vip = match self.vips.remove(&address) {
                Some(old) if old.backends == service.tasks => old,
                _ => Vip {
                    backends: service.tasks.clone(),
                    maglev: maglev_for(&service.tasks),
                },
            };
            vips.insert(address, vip);
        }
        self.vips = vips;
        let claimed = self.vips.keys().copied().chain([routes.info.gateway]);
        self.stack.claim(claimed);
    }

    /// Takes in every frame waiting on the device; whether any socket's state may have changed.
    /// A frame that opens something at a VIP finds a socket made for it just before the stack
    /// takes it in (smoltcp has no listen-on-every-port): a TCP SYN a listener (which takes
    /// only that connection), a UDP datagram a socket at that VIP and port. So does a SYN to
    /// the gateway's DNS port.
    pub fn take_frames(&mut self, shared: &mut Shared) -> bool {
        let mut changed = false;
        loop {
            let Some(frame) = self.stack.device.fetch() else {
                return changed;
            };
            let dns = SocketAddrV4::new(self.gateway, dns::PORT);
            let listener = match opening(frame) {
                Some((IpProtocol::Tcp, to)) if to == dns => Some(Listener::Dns(self.listen_dns())),
                Some((protocol, to)) if self.vips.contains_key(to.ip()) => match protocol {
                    IpProtocol::Tcp => Some(Listener::Vip(self.listen(to, &mut shared.pool))),
                    _ => {
                        self.bind_vip(to, &mut shared.udp_pool);
                        None
                    }
                },
                _ => None,
            };
            match self.stack.ingress_one() {
                Some(frame_changed) => changed |= frame_changed,
                None => return changed,
            }
            match listener {
                Some(Listener::Vip(index)) => self.unless_taken(index, &mut shared.pool),
                Some(Listener::Dns(serial)) => self.unless_taken_dns(serial),
                None => {}
            }
        }
    }
}

/// A listener made for a SYN.
enum Listener {
    /// A connection to a VIP, by index.
    Vip(usize),
    /// A DNS session, by serial number.
    Dns(u64),
}

/// What `frame` may open, and where: a TCP connection (a SYN without ACK) or a UDP flow, to an
/// IPv4 destination.
fn opening(frame: &[u8]) -> Option<(IpProtocol, SocketAddrV4)> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
    if ip.frag_offset() != 0 {
        return None;
    }
    let port = match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
            (tcp.syn() && !tcp.ack()).then_some(tcp.dst_port())?
        }
        IpProtocol::Udp => UdpPacket::new_checked(ip.payload()).ok()?.dst_port(),
        _ => return None,
    };
    Some((ip.next_header(), SocketAddrV4::new(ip.dst_addr(), port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, IpAddress, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber,
        UdpRepr,
    };

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 9);

    /// A frame from the client to the VIP carrying `len` bytes of `protocol`, written by `emit`.
    fn frame(protocol: IpProtocol, len: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let ip = Ipv4Repr {
            src_addr: CLIENT,
            dst_addr: VIP,
            next_header: protocol,
            payload_len: len,
            hop_limit: 64,
        };
        let mut frame = vec![0u8; 14 + 20 + len];
        let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr {
            src_addr: EthernetAddress([2, 0x42, 10, 0, 1, 5]),
            dst_addr: EthernetAddress([2, 0x42, 10, 0, 1, 9]),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut ethernet);
        let mut packet = Ipv4Packet::new_unchecked(ethernet.payload_mut());
        ip.emit(&mut packet, &ChecksumCapabilities::default());
        emit(packet.payload_mut());
        frame
    }

    /// A TCP segment to the VIP's `port` with `control`, acking if `ack`.
    fn segment(control: TcpControl, ack: bool, port: u16) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: 40000,
            dst_port: port,
            control,
            seq_number: TcpSeqNumber(1),
            ack_number: ack.then_some(TcpSeqNumber(1)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        frame(IpProtocol::Tcp, tcp.buffer_len(), |payload| {
            tcp.emit(
                &mut TcpPacket::new_unchecked(payload),
                &IpAddress::Ipv4(CLIENT),
                &IpAddress::Ipv4(VIP),
                &ChecksumCapabilities::default(),
            )
        })
    }

    #[test]
    fn a_syn_opens_a_connection_and_any_datagram_a_flow() {
        let vip = |port| SocketAddrV4::new(VIP, port);
        let tcp = |frame: Vec<u8>| opening(&frame);
        assert_eq!(
            tcp(segment(TcpControl::Syn, false, 5432)),
            Some((IpProtocol::Tcp, vip(5432)))
        );
        assert_eq!(tcp(segment(TcpControl::Syn, true, 5432)), None);
        assert_eq!(tcp(segment(TcpControl::None, true, 5432)), None);
        assert_eq!(tcp(segment(TcpControl::Rst, false, 5432)), None);
        let udp = UdpRepr {
            src_port: 40000,
            dst_port: 53,
        };
        let datagram = frame(IpProtocol::Udp, 8, |payload| {
            udp.emit(
                &mut UdpPacket::new_unchecked(payload),
                &IpAddress::Ipv4(CLIENT),
                &IpAddress::Ipv4(VIP),
                0,
                |_| {},
                &ChecksumCapabilities::default(),
            )
        });
        assert_eq!(opening(&datagram), Some((IpProtocol::Udp, vip(53))));
        assert_eq!(opening(&[0u8; 20]), None);
    }
}
