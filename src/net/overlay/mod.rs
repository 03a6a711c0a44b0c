//! The overlay data plane of one node: TAP <-> VXLAN over UDP, in userspace.
//!
//! Frames from the network's TAP (TCP super-frames of up to 64 KB, thanks to the virtio-net
//! header and TSO offload) are answered locally (ARP), cut into MSS-sized frames
//! ([`segment`]), wrapped in VXLAN ([`wire`]) and sent to the peer node with one UDP GSO send
//! ([`udp`]); datagrams from peers, received many at a time with UDP GRO, are checked, unwrapped
//! and merged back into super-frames ([`coalesce`]) for one TAP write each. Where frames go
//! comes from the RouteTable compiled into a forwarding database ([`fdb`]). [`Engine`] runs it
//! all on one thread per TAP queue.

#![warn(missing_docs)]

pub mod arp;
pub mod checksum;
pub mod coalesce;
pub mod counters;
pub mod engine;
pub mod fdb;
pub mod frame;
pub mod port;
pub mod segment;
pub mod tap;
pub mod udp;
pub mod wire;

pub use counters::{EngineCounters, EngineDrops, NetworkDrops, NetworkStats};
pub use engine::{Engine, EngineConfig};
pub use port::{LocalPort, PortOpener};
