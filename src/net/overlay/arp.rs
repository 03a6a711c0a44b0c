//! Answering ARP on the TAP: every remote endpoint's MAC address is known from the RouteTable,
//! so requests never need to cross the overlay. (Local endpoints answer for themselves, and the
//! node's balancer for the gateway and the VIPs.)

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use super::fdb::NetworkFdb;

/// Length of an ARP reply frame for IPv4 over Ethernet (the TAP takes it unpadded).
pub const ARP_REPLY_LEN: usize = 14 + 28;

/// If `frame` is an ARP request for an address this node answers on `network`, writes the reply
/// (addressed to the requester) to `reply` and returns its length.
pub fn answer(frame: &[u8], network: &NetworkFdb, reply: &mut [u8]) -> Option<usize> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    if ethernet.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let arp = ArpPacket::new_checked(ethernet.payload()).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&arp).ok()?
    else {
        return None;
    };
    // A gratuitous announcement asks nothing.
    if source_protocol_addr == target_protocol_addr {
        return None;
    }
    let mac = EthernetAddress(network.arp_answer(target_protocol_addr)?);
    let reply = reply.get_mut(..ARP_REPLY_LEN)?;
    let mut out = EthernetFrame::new_unchecked(&mut *reply);
    EthernetRepr {
        src_addr: mac,
        dst_addr: source_hardware_addr,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut out);
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    }
    .emit(&mut ArpPacket::new_unchecked(out.payload_mut()));
    Some(ARP_REPLY_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::overlay::fdb::{Fdb, tests::table};
    use crate::net::routes::mac_for;
    use std::net::Ipv4Addr;

    fn request(target: Ipv4Addr) -> Vec<u8> {
        let asker = Ipv4Addr::new(10, 0, 1, 2);
        let mut frame = vec![0u8; ARP_REPLY_LEN];
        let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr {
            src_addr: EthernetAddress(mac_for(asker)),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut ethernet);
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(mac_for(asker)),
            source_protocol_addr: asker,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        }
        .emit(&mut ArpPacket::new_unchecked(ethernet.payload_mut()));
        frame
    }

    #[test]
    fn remote_endpoints_are_answered() {
        let fdb = Fdb::compile(&table(), "a", 4789);
        let n1 = &fdb.networks()[0];
        for target in [Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)] {
            let mut reply = [0u8; 64];
            let len = answer(&request(target), n1, &mut reply).expect("answered");
            let ethernet = EthernetFrame::new_checked(&reply[..len]).unwrap();
            assert_eq!(ethernet.dst_addr().0, mac_for(Ipv4Addr::new(10, 0, 1, 2)));
            assert_eq!(ethernet.src_addr().0, mac_for(target));
            let arp = ArpPacket::new_checked(ethernet.payload()).unwrap();
            let repr = ArpRepr::parse(&arp).unwrap();
            assert_eq!(
                repr,
                ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(mac_for(target)),
                    source_protocol_addr: target,
                    target_hardware_addr: EthernetAddress(mac_for(Ipv4Addr::new(10, 0, 1, 2))),
                    target_protocol_addr: Ipv4Addr::new(10, 0, 1, 2),
                }
            );
        }
    }

    #[test]
    fn others_are_not() {
        let fdb = Fdb::compile(&table(), "a", 4789);
        let n1 = &fdb.networks()[0];
        let mut reply = [0u8; 64];
        // Unknown address; the gateway (the balancer answers); a local endpoint (it answers
        // itself); a reply; truncated input.
        for unanswered in [Ipv4Addr::new(10, 0, 1, 99), Ipv4Addr::new(10, 0, 1, 1)] {
            assert_eq!(answer(&request(unanswered), n1, &mut reply), None);
        }
        assert_eq!(
            answer(&request(Ipv4Addr::new(10, 0, 1, 2)), n1, &mut reply),
            None
        );
        let mut not_request = request(Ipv4Addr::new(10, 0, 1, 3));
        not_request[21] = 2;
        assert_eq!(answer(&not_request, n1, &mut reply), None);
        let full = request(Ipv4Addr::new(10, 0, 1, 3));
        for len in 0..full.len() {
            assert_eq!(answer(&full[..len], n1, &mut reply), None);
        }
    }
}
