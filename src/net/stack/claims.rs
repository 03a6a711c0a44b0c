//! Addresses a stack answers for besides its own: the VIP balancer's stack takes traffic for the
//! network's gateway and every service VIP with smoltcp's AnyIP, which on its own would accept
//! any address at all and answer ARP for every task on the bridge. The device keeps smoltcp to
//! the claimed addresses: only ARP requests for them and frames to their MACs get in, and of
//! IPv4 packets only those to them.
//!
//! On the wire each claimed address looks like an endpoint of its own, with the MAC
//! [`mac_for`] it (what the overlay engine answers ARP with, and what other nodes expect):
//! frames to such a MAC are handed to smoltcp as if sent to the stack's one MAC, and frames the
//! stack sends leave from the MAC of the address they come from, so the bridge learns where
//! each claimed address is.

use std::net::Ipv4Addr;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Ipv4Packet,
};

use crate::net::routes::{MacAddr, mac_for};

/// The first two bytes of every [`mac_for`] address.
const DERIVED_PREFIX: [u8; 2] = [0x02, 0x42];

/// The addresses a stack claims, its own included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The stack's own MAC, the only one smoltcp accepts.
    mac: MacAddr,
    /// Sorted, for a binary search per frame.
    addresses: Vec<Ipv4Addr>,
}

impl Claims {
    /// The claims of a stack whose MAC is `mac`, on `addresses`.
    pub fn new(mac: MacAddr, addresses: impl IntoIterator<Item = Ipv4Addr>) -> Claims {
        let mut addresses: Vec<Ipv4Addr> = addresses.into_iter().collect();
        addresses.sort_unstable();
        addresses.dedup();
        Claims { mac, addresses }
    }

    /// Whether `address` is claimed.
    pub fn holds(&self, address: Ipv4Addr) -> bool {
        self.addresses.binary_search(&address).is_ok()
    }

    /// Whether the stack should see `frame`: an ARP request for a claimed address, or a frame
    /// to the MAC of one (whose destination is then rewritten to the stack's MAC), unless it is
    /// an IPv4 packet to an address not claimed (a task's traffic for the world beyond its
    /// gateway: AnyIP would answer it as if it were every host).
    pub fn admit(&self, frame: &mut [u8]) -> bool {
        let Some(destination) = frame.first_chunk::<6>().copied() else {
            return false;
        };
        if destination == EthernetAddress::BROADCAST.0 {
            return self.asks_for_claimed(frame);
        }
        if destination != self.mac {
            let [_, _, a, b, c, d] = destination;
            if destination[..2] != DERIVED_PREFIX || !self.holds(Ipv4Addr::new(a, b, c, d)) {
                return false;
            }
            frame[..6].copy_from_slice(&self.mac);
        }
        self.for_claimed_or_not_ipv4(frame)
    }

    /// Whether `frame` is not an IPv4 packet, or one to a claimed address.
    fn for_claimed_or_not_ipv4(&self, frame: &[u8]) -> bool {
        let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        if ethernet.ethertype() != EthernetProtocol::Ipv4 {
            return true;
        }
        Ipv4Packet::new_checked(ethernet.payload()).is_ok_and(|ip| self.holds(ip.dst_addr()))
    }

    /// Whether a broadcast frame is an ARP request for a claimed address.
    fn asks_for_claimed(&self, frame: &[u8]) -> bool {
        let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        if ethernet.ethertype() != EthernetProtocol::Arp {
            return false;
        }
        let arp = ArpPacket::new_checked(ethernet.payload()).and_then(|p| ArpRepr::parse(&p));
        matches!(arp, Ok(ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            target_protocol_addr,
            ..
        }) if self.holds(target_protocol_addr))
    }
}

/// Gives a frame the stack sends the MAC of the address it comes from: the Ethernet source of
/// an IPv4 packet, and both the Ethernet and the ARP sender of an ARP packet. (The stack sends
/// only from addresses it claims, so no lookup is needed.)
pub fn disguise(frame: &mut [u8]) {
    let Ok(mut ethernet) = EthernetFrame::new_checked(&mut *frame) else {
        return;
    };
    let sender = match ethernet.ethertype() {
        EthernetProtocol::Ipv4 => match Ipv4Packet::new_checked(ethernet.payload_mut()) {
            Ok(packet) => packet.src_addr(),
            Err(_) => return,
        },
        EthernetProtocol::Arp => match ArpPacket::new_checked(ethernet.payload_mut()) {
            Ok(mut arp) => {
                let Some(&[a, b, c, d]) = arp.source_protocol_addr().first_chunk::<4>() else {
                    return;
                };
                let sender = Ipv4Addr::new(a, b, c, d);
                arp.set_source_hardware_addr(&mac_for(sender));
                sender
            }
            Err(_) => return,
        },
        _ => return,
    };
    ethernet.set_src_addr(EthernetAddress(mac_for(sender)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{EthernetRepr, IpProtocol, Ipv4Repr};

    const OWN: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 9);
    const TASK: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);

    fn claims() -> Claims {
        Claims::new(mac_for(OWN), [OWN, VIP, Ipv4Addr::new(10, 0, 1, 1)])
    }

    /// An ARP frame from the task: a request for `target` or a reply from `target`.
    fn arp(operation: ArpOperation, target: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 28];
        let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr {
            src_addr: EthernetAddress(mac_for(TASK)),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut ethernet);
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: EthernetAddress(mac_for(TASK)),
            source_protocol_addr: TASK,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        }
        .emit(&mut ArpPacket::new_unchecked(ethernet.payload_mut()));
        frame
    }

    /// An empty IPv4 packet from `source` to `target` at the MAC `destination`.
    fn ipv4(destination: MacAddr, source: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 20];
        let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr {
            src_addr: EthernetAddress(mac_for(OWN)),
            dst_addr: EthernetAddress(destination),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut ethernet);
        Ipv4Repr {
            src_addr: source,
            dst_addr: target,
            next_header: IpProtocol::Tcp,
            payload_len: 0,
            hop_limit: 64,
        }
        .emit(
            &mut Ipv4Packet::new_unchecked(ethernet.payload_mut()),
            &Default::default(),
        );
        frame
    }

    #[test]
    fn only_arp_requests_for_claimed_addresses_get_in() {
        let claims = claims();
        assert!(claims.admit(&mut arp(ArpOperation::Request, VIP)));
        assert!(claims.admit(&mut arp(ArpOperation::Request, OWN)));
        assert!(!claims.admit(&mut arp(ArpOperation::Request, TASK)));
        // A broadcast that is not an ARP request.
        assert!(!claims.admit(&mut arp(ArpOperation::Reply, VIP)));
    }

    #[test]
    fn frames_to_a_claimed_mac_reach_the_stack_under_its_own() {
        let claims = claims();
        let mut to_vip = ipv4(mac_for(VIP), TASK, VIP);
        assert!(claims.admit(&mut to_vip));
        assert_eq!(to_vip[..6], mac_for(OWN));
        assert!(claims.admit(&mut ipv4(mac_for(OWN), TASK, OWN)));
        assert!(!claims.admit(&mut ipv4(mac_for(TASK), OWN, TASK)));
        assert!(!claims.admit(&mut ipv4([0x02, 0x43, 10, 0, 1, 9], TASK, VIP)));
        assert!(!claims.admit(&mut [0u8; 3]));
    }

    #[test]
    fn packets_for_the_world_beyond_the_gateway_stay_out() {
        let gateway = mac_for(Ipv4Addr::new(10, 0, 1, 1));
        let mut outward = ipv4(gateway, TASK, Ipv4Addr::new(8, 8, 8, 8));
        assert!(!claims().admit(&mut outward));
    }

    #[test]
    fn frames_sent_wear_the_mac_of_their_source() {
        let mut from_vip = ipv4(mac_for(TASK), VIP, TASK);
        disguise(&mut from_vip);
        assert_eq!(from_vip[6..12], mac_for(VIP));
        let mut reply = arp(ArpOperation::Reply, TASK);
        reply[14 + 14..14 + 18].copy_from_slice(&VIP.octets());
        disguise(&mut reply);
        assert_eq!(reply[6..12], mac_for(VIP));
        assert_eq!(reply[14 + 8..14 + 14], mac_for(VIP));
    }
}
