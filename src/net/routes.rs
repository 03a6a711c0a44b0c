//! RouteTable: what one node's data plane needs to know about the overlays it is on.
//!
//! The leader compiles a table per node from the store (see `manager::routes`) and sends each node
//! the changes since the table it sent before ([`RouteTable::diff`], [`RouteTable::apply`]). The
//! node swaps the result in as an immutable snapshot that the data plane reads without locks.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

/// An Ethernet address.
pub type MacAddr = [u8; 6];

/// The MAC address of the overlay endpoint at `ip`: `02:42` and the four address bytes, as
/// docker derives them. Knowing this, a node answers ARP for any endpoint without flooding.
pub fn mac_for(ip: Ipv4Addr) -> MacAddr {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// The overlays one node is on, with every endpoint on them and the nodes they run on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    /// Underlay (data path) address of every node an endpoint in this table runs on, by node ID.
    pub nodes: BTreeMap<String, IpAddr>,
    /// The networks, by network ID.
    pub networks: BTreeMap<String, NetworkRoutes>,
}

/// One overlay network as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRoutes {
    /// What the network is.
    pub info: NetworkInfo,
    /// Its endpoints, by address.
    pub endpoints: BTreeMap<Ipv4Addr, Endpoint>,
}

/// The fixed facts of an overlay network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Network ID.
    pub id: String,
    /// Network name, as in `docker network ls`.
    pub name: String,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// The network's subnet.
    pub subnet: Ipv4Network,
    /// The gateway address (tasks' default route).
    pub gateway: Ipv4Addr,
    /// MTU inside the overlay.
    pub mtu: u16,
}

impl NetworkInfo {
    /// Name of the network's bridge on each node (at most 15 bytes, as Linux requires).
    pub fn bridge_name(&self) -> String {
        format!("shb{}", self.vni)
    }

    /// Name of the network's TAP device on each node, the data plane's port on the bridge.
    pub fn tap_name(&self) -> String {
        format!("sht{}", self.vni)
    }
}

/// A task's address on an overlay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The address.
    pub address: Ipv4Addr,
    /// Its MAC address ([`mac_for`] the address).
    pub mac: MacAddr,
    /// The node the task runs on.
    pub node_id: String,
    /// The task.
    pub task_id: String,
    /// The task's service.
    pub service_id: String,
}

/// One difference between two tables; `None` removes the entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteChange {
    /// A node's underlay address appears, changes or goes.
    Node {
        /// Node ID.
        id: String,
        /// Its new address, or `None` to remove it.
        addr: Option<IpAddr>,
    },
    /// A network appears, changes (its endpoints are kept) or goes (with its endpoints).
    Network {
        /// Network ID.
        id: String,
        /// Its new facts, or `None` to remove it.
        info: Option<NetworkInfo>,
    },
    /// An endpoint appears, changes or goes.
    Endpoint {
        /// The endpoint's network.
        network_id: String,
        /// Its address.
        address: Ipv4Addr,
        /// The endpoint, or `None` to remove it.
        endpoint: Option<Endpoint>,
    },
}

impl RouteTable {
    /// The changes that turn `self` into `new`: networks before their endpoints, removals of
    /// endpoints before removals of their networks.
    pub fn diff(&self, new: &RouteTable) -> Vec<RouteChange> {
        let mut changes = Vec::new();
        for (id, addr) in &new.nodes {
            if self.nodes.get(id) != Some(addr) {
                changes.push(RouteChange::Node {
                    id: id.clone(),
                    addr: Some(*addr),
                });
            }
        }
        for (id, routes) in &new.networks {
            let old = self.networks.get(id);
            if old.map(|o| &o.info) != Some(&routes.info) {
                changes.push(RouteChange::Network {
                    id: id.clone(),
                    info: Some(routes.info.clone()),
                });
            }
            let empty = BTreeMap::new();
            let old_endpoints = old.map_or(&empty, |o| &o.endpoints);
            for (address, endpoint) in &routes.endpoints {
                if old_endpoints.get(address) != Some(endpoint) {
                    changes.push(RouteChange::Endpoint {
                        network_id: id.clone(),
                        address: *address,
                        endpoint: Some(endpoint.clone()),
                    });
                }
            }
            for address in old_endpoints.keys() {
                if !routes.endpoints.contains_key(address) {
                    changes.push(RouteChange::Endpoint {
                        network_id: id.clone(),
                        address: *address,
                        endpoint: None,
                    });
                }
            }
        }
        for id in self.networks.keys() {
            if !new.networks.contains_key(id) {
                changes.push(RouteChange::Network {
                    id: id.clone(),
                    info: None,
                });
            }
        }
        for id in self.nodes.keys() {
            if !new.nodes.contains_key(id) {
                changes.push(RouteChange::Node {
                    id: id.clone(),
                    addr: None,
                });
            }
        }
        changes
    }

    /// Applies changes made by [`RouteTable::diff`]. An endpoint of a network the table does not
    /// hold is ignored (it cannot happen with a diff applied to the table it was made from).
    pub fn apply(&mut self, changes: &[RouteChange]) {
        for change in changes {
            match change {
                RouteChange::Node { id, addr: Some(a) } => {
                    self.nodes.insert(id.clone(), *a);
                }
                RouteChange::Node { id, addr: None } => {
                    self.nodes.remove(id);
                }
                RouteChange::Network { id, info: Some(i) } => {
                    self.networks
                        .entry(id.clone())
                        .and_modify(|n| n.info = i.clone())
                        .or_insert_with(|| NetworkRoutes {
                            info: i.clone(),
                            endpoints: BTreeMap::new(),
                        });
                }
                RouteChange::Network { id, info: None } => {
                    self.networks.remove(id);
                }
                RouteChange::Endpoint {
                    network_id,
                    address,
                    endpoint,
                } => {
                    let Some(network) = self.networks.get_mut(network_id) else {
                        continue;
                    };
                    match endpoint {
                        Some(e) => network.endpoints.insert(*address, e.clone()),
                        None => network.endpoints.remove(address),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(id: &str, vni: u32) -> NetworkInfo {
        NetworkInfo {
            id: id.into(),
            name: format!("net-{id}"),
            vni,
            subnet: "10.0.1.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            mtu: 1450,
        }
    }

    fn endpoint(last: u8, node: &str) -> Endpoint {
        let address = Ipv4Addr::new(10, 0, 1, last);
        Endpoint {
            address,
            mac: mac_for(address),
            node_id: node.into(),
            task_id: format!("task{last}"),
            service_id: "svc".into(),
        }
    }

    /// A network by ID and VNI, with its endpoints as (last address byte, node).
    type NetworkFixture<'a> = (&'a str, u32, &'a [(u8, &'a str)]);

    fn table(nodes: &[(&str, u8)], networks: &[NetworkFixture]) -> RouteTable {
        RouteTable {
            nodes: nodes
                .iter()
                .map(|(id, last)| {
                    (
                        id.to_string(),
                        IpAddr::V4(Ipv4Addr::new(192, 168, 0, *last)),
                    )
                })
                .collect(),
            networks: networks
                .iter()
                .map(|(id, vni, endpoints)| {
                    let endpoints = endpoints
                        .iter()
                        .map(|(last, node)| {
                            let e = endpoint(*last, node);
                            (e.address, e)
                        })
                        .collect();
                    (
                        id.to_string(),
                        NetworkRoutes {
                            info: network(id, *vni),
                            endpoints,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn macs_carry_the_address() {
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 0, 0, 5)),
            [0x02, 0x42, 10, 0, 0, 5]
        );
    }

    #[test]
    fn a_diff_applied_to_the_old_table_gives_the_new_one() {
        let old = table(
            &[("a", 1), ("b", 2)],
            &[
                ("n1", 4096, &[(2, "a"), (3, "b")]),
                ("n2", 4097, &[(2, "a")]),
            ],
        );
        let new = table(
            &[("a", 1), ("c", 3)],
            &[
                ("n1", 4096, &[(2, "a"), (4, "c")]),
                ("n3", 4098, &[(5, "c")]),
            ],
        );
        let changes = old.diff(&new);
        let mut applied = old.clone();
        applied.apply(&changes);
        assert_eq!(applied, new);
        // Only what changed travels: nodes c and b; n1's .4 and .3; n3 and its .5; n2.
        assert_eq!(changes.len(), 7);
        assert!(old.diff(&old).is_empty());
    }

    #[test]
    fn a_diff_from_nothing_builds_the_whole_table() {
        let new = table(&[("a", 1)], &[("n1", 4096, &[(2, "a"), (3, "a")])]);
        let mut built = RouteTable::default();
        built.apply(&RouteTable::default().diff(&new));
        assert_eq!(built, new);
    }

    #[test]
    fn device_names_fit_linux_limits() {
        let info = network("n", 0xFF_FFFF);
        assert!(info.bridge_name().len() <= 15 && info.tap_name().len() <= 15);
    }
}
