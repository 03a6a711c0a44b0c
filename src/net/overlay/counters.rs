//! Packet and drop counters: relaxed atomics, added to once per batch (a super-frame, a GRO
//! buffer) rather than per packet, so the two queue threads rarely touch the same line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Why a frame of a known network was dropped (the last variant sizes the counter array).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkDrop {
    /// From the TAP to a MAC on this node: the bridge's business.
    LocalDestination,
    /// From the TAP: IPv6 multicast (neighbour discovery, MLD), not carried.
    Ipv6Multicast,
    /// From the TAP: an ARP packet this node does not answer.
    UnansweredArp,
    /// From the TAP: a frame that disagrees with its virtio-net header or is too short.
    Malformed,
    /// From a peer: unicast to a MAC that is not on this node.
    NotForThisNode,
    /// The TAP did not take the frame (queue full, device gone).
    PortWriteFailed,
    /// The UDP socket did not take the datagrams.
    SendFailed,
    /// From a peer: a frame from the gateway's or a VIP's MAC, which only this node's own
    /// balancer sends on this node's bridge.
    FromBalancerAddress,
}

/// The live counters of one network.
#[derive(Debug, Default)]
pub struct NetworkCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    drops: [AtomicU64; NetworkDrop::FromBalancerAddress as usize + 1],
}

impl NetworkCounters {
    /// Counts frames written to the TAP (received from the overlay).
    #[inline]
    pub fn received(&self, packets: u64, bytes: u64) {
        self.rx_packets.fetch_add(packets, Relaxed);
        self.rx_bytes.fetch_add(bytes, Relaxed);
    }

    /// Counts frames sent to peers (read from the TAP; a super-frame counts its segments).
    #[inline]
    pub fn sent(&self, packets: u64, bytes: u64) {
        self.tx_packets.fetch_add(packets, Relaxed);
        self.tx_bytes.fetch_add(bytes, Relaxed);
    }

    /// Counts `count` frames dropped for `reason`.
    #[inline]
    pub fn dropped(&self, reason: NetworkDrop, count: u64) {
        self.drops[reason as usize].fetch_add(count, Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> NetworkStats {
        let drop = |reason: NetworkDrop| self.drops[reason as usize].load(Relaxed);
        NetworkStats {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            drops: NetworkDrops {
                local_destination: drop(NetworkDrop::LocalDestination),
                ipv6_multicast: drop(NetworkDrop::Ipv6Multicast),
                unanswered_arp: drop(NetworkDrop::UnansweredArp),
                malformed: drop(NetworkDrop::Malformed),
                not_for_this_node: drop(NetworkDrop::NotForThisNode),
                port_write_failed: drop(NetworkDrop::PortWriteFailed),
                send_failed: drop(NetworkDrop::SendFailed),
                from_balancer_address: drop(NetworkDrop::FromBalancerAddress),
            },
        }
    }
}

/// One network's counters at one moment. "rx" is from the overlay to the TAP, "tx" from the
/// TAP to the overlay, both in inner frames (a TSO super-frame counts its segments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NetworkStats {
    /// Frames written to the TAP.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames sent to peers (once per frame, however many peers a flood went to).
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Drops by reason.
    pub drops: NetworkDrops,
}

/// Drops of one network by reason (see [`NetworkDrop`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NetworkDrops {
    /// See [`NetworkDrop::LocalDestination`].
    pub local_destination: u64,
    /// See [`NetworkDrop::Ipv6Multicast`].
    pub ipv6_multicast: u64,
    /// See [`NetworkDrop::UnansweredArp`].
    pub unanswered_arp: u64,
    /// See [`NetworkDrop::Malformed`].
    pub malformed: u64,
    /// See [`NetworkDrop::NotForThisNode`].
    pub not_for_this_node: u64,
    /// See [`NetworkDrop::PortWriteFailed`].
    pub port_write_failed: u64,
    /// See [`NetworkDrop::SendFailed`].
    pub send_failed: u64,
    /// See [`NetworkDrop::FromBalancerAddress`].
    pub from_balancer_address: u64,
}

/// Why a datagram was dropped before it could be tied to a network (the last variant sizes the
/// counter array).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineDrop {
    /// The source address is not a cluster node's.
    NotClusterNode,
    /// The VXLAN flags are not exactly the I bit.
    BadFlags,
    /// No network of this node has the VNI.
    UnknownVni,
    /// Too short for a VXLAN header and an Ethernet header.
    Malformed,
}

/// The live engine-wide drop counters.
#[derive(Debug, Default)]
pub struct EngineDropCounters {
    drops: [AtomicU64; EngineDrop::Malformed as usize + 1],
}

impl EngineDropCounters {
    /// Counts one datagram dropped for `reason`.
    #[inline]
    pub fn dropped(&self, reason: EngineDrop, count: u64) {
        self.drops[reason as usize].fetch_add(count, Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> EngineDrops {
        let drop = |reason: EngineDrop| self.drops[reason as usize].load(Relaxed);
        EngineDrops {
            not_cluster_node: drop(EngineDrop::NotClusterNode),
            bad_flags: drop(EngineDrop::BadFlags),
            unknown_vni: drop(EngineDrop::UnknownVni),
            malformed: drop(EngineDrop::Malformed),
        }
    }
}

/// Engine-wide drops at one moment, in datagrams (see [`EngineDrop`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineDrops {
    /// See [`EngineDrop::NotClusterNode`].
    pub not_cluster_node: u64,
    /// See [`EngineDrop::BadFlags`].
    pub bad_flags: u64,
    /// See [`EngineDrop::UnknownVni`].
    pub unknown_vni: u64,
    /// See [`EngineDrop::Malformed`].
    pub malformed: u64,
}

/// What [`super::Engine::counters`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Per network, by network ID, for the networks currently installed.
    pub networks: BTreeMap<String, NetworkStats>,
    /// Datagrams dropped before they reached a network.
    pub drops: EngineDrops,
}
