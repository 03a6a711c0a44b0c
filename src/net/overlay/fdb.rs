//! The forwarding database: a RouteTable snapshot compiled, for one node, into the lookups the
//! packet path makes (where does this MAC live, which network is this VNI, is this datagram from
//! a cluster node, whom to flood to, which addresses to answer ARP for).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::net::routes::{MacAddr, NetworkInfo, RouteTable, mac_for};

use super::wire::{VXLAN_HEADER_LEN, vxlan_header};

/// Where frames to a MAC address go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// To the data port of the node at this address.
    Remote(SocketAddr),
    /// To a task on this node: the bridge delivers those, they never need the overlay.
    Local,
    /// Nobody known: flood (head-end replication) or drop.
    Unknown,
    /// The network's gateway or a service VIP: every node's balancer holds these, so a frame
    /// to one is this node's (the bridge's business) and a frame from one never comes from a
    /// peer. Flooding them would let other nodes answer and teach bridges the wrong port.
    Balancer,
}

/// A hasher for MAC keys: the last four bytes are the endpoint's IPv4 address, distinct within a
/// network, so a multiply spreads them well; SipHash would cost more than the rest of a lookup.
#[derive(Default)]
pub struct MacHasher(u64);

impl Hasher for MacHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
}

type MacMap<V> = HashMap<MacAddr, V, BuildHasherDefault<MacHasher>>;

/// One network's part of the database.
#[derive(Debug)]
pub struct NetworkFdb {
    /// The network.
    pub info: NetworkInfo,
    /// The VXLAN header of the network's datagrams.
    pub vxlan_header: [u8; VXLAN_HEADER_LEN],
    /// The other nodes with endpoints on the network: where broadcast and unknown frames go.
    pub flood: Vec<SocketAddr>,
    macs: MacMap<Destination>,
    /// Addresses answered by ARP on this node: remote endpoints and the gateway.
    arp: HashMap<Ipv4Addr, MacAddr>,
}

impl NetworkFdb {
    /// Where frames to `mac` go.
    #[inline]
    pub fn destination(&self, mac: &MacAddr) -> Destination {
        self.macs.get(mac).copied().unwrap_or(Destination::Unknown)
    }

    /// The MAC address to answer an ARP request for `ip` with, if this node answers it.
    pub fn arp_answer(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.arp.get(&ip).copied()
    }
}

/// The compiled database; immutable, swapped whole when the table changes.
#[derive(Debug, Default)]
pub struct Fdb {
    /// Networks, in VNI order.
    networks: Vec<NetworkFdb>,
    /// Underlay addresses of the other cluster nodes: the only accepted datagram sources.
    sources: HashSet<IpAddr>,
}

impl Fdb {
    /// Compiles `table` for the node `local_node`, whose peers listen on `data_port`.
    pub fn compile(table: &RouteTable, local_node: &str, data_port: u16) -> Fdb {
        let node_addr = |id: &str| {
            table
                .nodes
                .get(id)
                .map(|ip| SocketAddr::new(ip.to_canonical(), data_port))
        };
        let mut networks: Vec<NetworkFdb> = table
            .networks
            .values()
            .map(|routes| {
                let mut macs = MacMap::default();
                let mut arp = HashMap::new();
                let mut flood = BTreeSet::new();
                for endpoint in routes.endpoints.values() {
                    let destination = if endpoint.node_id == local_node {
                        Destination::Local
                    } else {
                        match node_addr(&endpoint.node_id) {
                            Some(peer) => {
                                flood.insert(peer);
                                arp.insert(endpoint.address, endpoint.mac);
                                Destination::Remote(peer)
                            }
                            // A node without an address cannot be reached; frames to it flood.
                            None => continue,
                        }
                    };
                    macs.insert(endpoint.mac, destination);
                }
                // The balancer answers ARP for these itself: an answer from the engine would
                // teach the bridge their MACs on the engine's port.
                let gateway = routes.info.gateway;
                let vips = routes.services.values().filter_map(|s| s.vip);
                for held in std::iter::once(gateway).chain(vips) {
                    macs.insert(mac_for(held), Destination::Balancer);
                }
                NetworkFdb {
                    vxlan_header: vxlan_header(routes.info.vni),
                    info: routes.info.clone(),
                    flood: flood.into_iter().collect(),
                    macs,
                    arp,
                }
            })
            .collect();
        networks.sort_by_key(|n| n.info.vni);
        let sources = table
            .nodes
            .iter()
            .filter(|(id, _)| id.as_str() != local_node)
            .map(|(_, ip)| ip.to_canonical())
            .collect();
        Fdb { networks, sources }
    }

    /// The index of the network with VXLAN network identifier `vni`.
    #[inline]
    pub fn network_index(&self, vni: u32) -> Option<usize> {
        self.networks
            .binary_search_by_key(&vni, |n| n.info.vni)
            .ok()
    }

    /// The networks, in VNI order; indices are those of [`Fdb::network_index`].
    pub fn networks(&self) -> &[NetworkFdb] {
        &self.networks
    }

    /// Whether `source` is the underlay address of another cluster node (IPv4-mapped IPv6
    /// addresses count as their IPv4 address).
    #[inline]
    pub fn is_cluster_node(&self, source: IpAddr) -> bool {
        self.sources.contains(&source.to_canonical())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::net::routes::{Endpoint, NetworkRoutes};

    /// Nodes a (127.0.0.1), b (127.0.0.2), c (127.0.0.3); network "n1" (VNI 4096,
    /// 10.0.1.0/24) with .2 on a, .3 on b, .4 on c; network "n2" (VNI 4097) with .2 on a only.
    pub(crate) fn table() -> RouteTable {
        let mut table = RouteTable::default();
        for (id, last) in [("a", 1), ("b", 2), ("c", 3)] {
            table
                .nodes
                .insert(id.into(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)));
        }
        for (id, vni, endpoints) in [
            ("n1", 4096, &[(2, "a"), (3, "b"), (4, "c")][..]),
            ("n2", 4097, &[(2, "a")][..]),
        ] {
            let octet = (vni - 4096 + 1) as u8;
            let info = NetworkInfo {
                id: id.into(),
                name: format!("net-{id}"),
                vni,
                subnet: format!("10.0.{octet}.0/24").parse().unwrap(),
                gateway: Ipv4Addr::new(10, 0, octet, 1),
                mtu: 1450,
            };
            let endpoints = endpoints
                .iter()
                .map(|(last, node)| {
                    let address = Ipv4Addr::new(10, 0, octet, *last);
                    let endpoint = Endpoint {
                        address,
                        mac: mac_for(address),
                        node_id: (*node).into(),
                        task_id: format!("t{last}"),
                        service_id: "s".into(),
                    };
                    (address, endpoint)
                })
                .collect();
            table.networks.insert(
                id.into(),
                NetworkRoutes {
                    info,
                    endpoints,
                    services: Default::default(),
                },
            );
        }
        table
    }

    #[test]
    fn lookups_follow_the_table() {
        let fdb = Fdb::compile(&table(), "a", 4789);
        let n1 = fdb.network_index(4096).unwrap();
        assert_eq!(fdb.network_index(4097), Some(n1 + 1));
        assert_eq!(fdb.network_index(4098), None);
        let n1 = &fdb.networks()[n1];
        let b: SocketAddr = "127.0.0.2:4789".parse().unwrap();
        let c: SocketAddr = "127.0.0.3:4789".parse().unwrap();
        assert_eq!(
            n1.destination(&mac_for(Ipv4Addr::new(10, 0, 1, 3))),
            Destination::Remote(b)
        );
        assert_eq!(
            n1.destination(&mac_for(Ipv4Addr::new(10, 0, 1, 2))),
            Destination::Local
        );
        assert_eq!(
            n1.destination(&mac_for(Ipv4Addr::new(10, 0, 1, 9))),
            Destination::Unknown
        );
        assert_eq!(n1.flood, vec![b, c]);
        assert_eq!(n1.vxlan_header, vxlan_header(4096));
        // ARP: remote endpoints, not local endpoints nor the gateway (they answer themselves).
        assert_eq!(n1.arp_answer(Ipv4Addr::new(10, 0, 1, 1)), None);
        assert!(n1.arp_answer(Ipv4Addr::new(10, 0, 1, 4)).is_some());
        assert_eq!(n1.arp_answer(Ipv4Addr::new(10, 0, 1, 2)), None);
        // n2 has no other node: nothing to flood to.
        assert!(fdb.networks()[1].flood.is_empty());

        assert!(fdb.is_cluster_node("127.0.0.2".parse().unwrap()));
        assert!(fdb.is_cluster_node("::ffff:127.0.0.3".parse().unwrap()));
        assert!(!fdb.is_cluster_node("127.0.0.1".parse().unwrap()), "self");
        assert!(!fdb.is_cluster_node("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn the_gateway_and_vips_are_the_local_balancers_and_never_flooded() {
        let mut table = table();
        let vip = Ipv4Addr::new(10, 0, 1, 100);
        table.networks.get_mut("n1").unwrap().services.insert(
            "s".into(),
            crate::net::routes::ServiceRoutes {
                name: "web".into(),
                aliases: Vec::new(),
                vip: Some(vip),
                tasks: Vec::new(),
            },
        );
        let fdb = Fdb::compile(&table, "a", 4789);
        let n1 = &fdb.networks()[0];
        assert_eq!(n1.destination(&mac_for(vip)), Destination::Balancer);
        let gateway = Ipv4Addr::new(10, 0, 1, 1);
        assert_eq!(n1.destination(&mac_for(gateway)), Destination::Balancer);
        // n2's gateway too, though it has no service.
        let gateway2 = Ipv4Addr::new(10, 0, 2, 1);
        assert_eq!(
            fdb.networks()[1].destination(&mac_for(gateway2)),
            Destination::Balancer
        );
    }
}
