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
    /// Ports published through the routing mesh, answered on every node.
    #[serde(default)]
    pub published: BTreeMap<PortKey, PublishedPort>,
    /// This node's own address on the ingress network, the source of the mesh's connections to
    /// backends; `None` while nothing is published through the mesh.
    #[serde(default)]
    pub ingress: Option<IngressAddress>,
    /// This node's own address on each other overlay it is on, by network ID: the source of the
    /// VIP balancer's connections to backends there (docker's per-node `lb-<network>` endpoint).
    /// The node's stack on such a network also holds the network's gateway (where DNS answers)
    /// and the VIPs of the network's services.
    #[serde(default)]
    pub balancers: BTreeMap<String, Ipv4Addr>,
}

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A published port: its protocol and number. (Serialised as `tcp/8080`, a JSON object key.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port number on every node.
    pub port: u16,
}

impl std::fmt::Display for PortKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

impl std::str::FromStr for PortKey {
    type Err = String;

    fn from_str(s: &str) -> Result<PortKey, String> {
        let bad = || format!("invalid port key {s:?}: expected tcp/PORT or udp/PORT");
        let (protocol, port) = s.split_once('/').ok_or_else(bad)?;
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => return Err(bad()),
        };
        Ok(PortKey {
            protocol,
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for PortKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PortKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A port published through the routing mesh: where to send what arrives on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// The service that publishes it.
    pub service_id: String,
    /// The port the service's tasks listen on.
    pub target_port: u16,
    /// Whether each TCP connection to a backend starts with a PROXY protocol v2 header carrying
    /// the client's address (the service's `com.shoal.mesh.proxy-protocol=v2` label).
    pub proxy_protocol: bool,
    /// The service's running tasks on up nodes, by task ID (a stable order for Maglev), each at
    /// its address on the ingress network.
    pub backends: Vec<Backend>,
}

/// One task a published port or a VIP can send a connection to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// The task.
    pub task_id: String,
    /// Its address on the network the connection goes over (ingress for a published port).
    pub address: Ipv4Addr,
}

/// A node's own address on the ingress network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressAddress {
    /// The ingress network's ID (a network of the same table).
    pub network_id: String,
    /// The address; its MAC is [`mac_for`] it, like a task's.
    pub address: Ipv4Addr,
}

/// One overlay network as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRoutes {
    /// What the network is.
    pub info: NetworkInfo,
    /// Its endpoints, by address.
    pub endpoints: BTreeMap<Ipv4Addr, Endpoint>,
    /// The services attached to it, by service ID: what DNS answers and the VIPs balance.
    /// Empty on the ingress network, which has no DNS and whose VIPs nothing dials.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceRoutes>,
}

/// A service as one overlay network sees it: its names and where they lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRoutes {
    /// The service's name (`<stack>_<service>` for a stack's).
    pub name: String,
    /// Its other names on this network (network aliases; a stack's short service name).
    pub aliases: Vec<String>,
    /// Its virtual IP on this network (endpoint mode `vip`); `None` with `dnsrr`.
    pub vip: Option<Ipv4Addr>,
    /// Its running tasks on up nodes, by task ID, at their addresses on this network: the VIP's
    /// backends and the answer to `tasks.<name>`.
    pub tasks: Vec<Backend>,
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

    /// Name of the TAP device of the daemon's own userspace stack on the network (the routing
    /// mesh's source address), the bridge's other port on nodes that have one.
    pub fn stack_tap_name(&self) -> String {
        format!("shs{}", self.vni)
    }

    /// Name of the TAP device of the node's VIP balancer on the network (its balancer address,
    /// the gateway where DNS answers, the services' VIPs), another port of the bridge. (`shv`
    /// names tasks' veths.)
    pub fn balancer_tap_name(&self) -> String {
        format!("shl{}", self.vni)
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
    /// The task; empty for a node's own ingress address ([`RouteTable::ingress`]).
    pub task_id: String,
    /// The task's service; empty for a node's own ingress address.
    pub service_id: String,
}

impl Endpoint {
    /// The endpoint at `address` (its MAC derived from it) of `task_id` of `service_id` on
    /// `node_id`; empty task and service for a node's own ingress address.
    pub fn new(address: Ipv4Addr, node_id: &str, task_id: &str, service_id: &str) -> Endpoint {
        Endpoint {
            address,
            mac: mac_for(address),
            node_id: node_id.to_string(),
            task_id: task_id.to_string(),
            service_id: service_id.to_string(),
        }
    }
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
    /// A published port appears, changes or goes.
    Published {
        /// The port.
        key: PortKey,
        /// Where it leads, or `None` to remove it.
        port: Option<PublishedPort>,
    },
    /// This node's ingress address appears, changes or goes.
    Ingress {
        /// The new address, or `None`.
        address: Option<IngressAddress>,
    },
    /// A service on a network appears, changes or goes.
    Service {
        /// The network.
        network_id: String,
        /// The service's ID.
        service_id: String,
        /// Its names and backends there, or `None` to remove it.
        routes: Option<ServiceRoutes>,
    },
    /// This node's balancer address on a network appears, changes or goes.
    Balancer {
        /// The network.
        network_id: String,
        /// The address, or `None`.
        address: Option<Ipv4Addr>,
    },
}

impl RouteTable {
    /// The changes that turn `self` into `new`: networks before their endpoints, removals of
    /// endpoints before removals of their networks.
    pub fn diff(&self, new: &RouteTable) -> Vec<RouteChange> {
        let mut changes = Vec::new();
        diff_maps(&self.nodes, &new.nodes, &mut changes, |id, addr| {
            RouteChange::Node {
                id: id.clone(),
                addr: addr.copied(),
            }
        });
        let (no_endpoints, no_services) = (BTreeMap::new(), BTreeMap::new());
        for (id, routes) in &new.networks {
            let old = self.networks.get(id);
            if old.map(|o| &o.info) != Some(&routes.info) {
                changes.push(RouteChange::Network {
                    id: id.clone(),
                    info: Some(routes.info.clone()),
                });
            }
            let old_endpoints = old.map_or(&no_endpoints, |o| &o.endpoints);
            diff_maps(
                old_endpoints,
                &routes.endpoints,
                &mut changes,
                |address, endpoint| RouteChange::Endpoint {
                    network_id: id.clone(),
                    address: *address,
                    endpoint: endpoint.cloned(),
                },
            );
            let old_services = old.map_or(&no_services, |o| &o.services);
            diff_maps(
                old_services,
                &routes.services,
                &mut changes,
                |service_id, routes| RouteChange::Service {
                    network_id: id.clone(),
                    service_id: service_id.clone(),
                    routes: routes.cloned(),
                },
            );
        }
        for id in self.networks.keys() {
            if !new.networks.contains_key(id) {
                changes.push(RouteChange::Network {
                    id: id.clone(),
                    info: None,
                });
            }
        }
        diff_maps(
            &self.published,
            &new.published,
            &mut changes,
            |key, port| RouteChange::Published {
                key: *key,
                port: port.cloned(),
            },
        );
        if self.ingress != new.ingress {
            changes.push(RouteChange::Ingress {
                address: new.ingress.clone(),
            });
        }
        diff_maps(
            &self.balancers,
            &new.balancers,
            &mut changes,
            |network_id, address| RouteChange::Balancer {
                network_id: network_id.clone(),
                address: address.copied(),
            },
        );
        changes
    }

    /// Applies changes made by [`RouteTable::diff`]. An endpoint or service of a network the
    /// table does not hold is ignored (it cannot happen with a diff applied to the table it was
    /// made from).
    pub fn apply(&mut self, changes: &[RouteChange]) {
        for change in changes {
            match change {
                RouteChange::Node { id, addr } => set(&mut self.nodes, id, addr),
                RouteChange::Network { id, info: Some(i) } => {
                    self.networks
                        .entry(id.clone())
                        .and_modify(|n| n.info = i.clone())
                        .or_insert_with(|| NetworkRoutes {
                            info: i.clone(),
                            endpoints: BTreeMap::new(),
                            services: BTreeMap::new(),
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
                    if let Some(network) = self.networks.get_mut(network_id) {
                        set(&mut network.endpoints, address, endpoint);
                    }
                }
                RouteChange::Service {
                    network_id,
                    service_id,
                    routes,
                } => {
                    if let Some(network) = self.networks.get_mut(network_id) {
                        set(&mut network.services, service_id, routes);
                    }
                }
                RouteChange::Published { key, port } => set(&mut self.published, key, port),
                RouteChange::Ingress { address } => self.ingress = address.clone(),
                RouteChange::Balancer {
                    network_id,
                    address,
                } => set(&mut self.balancers, network_id, address),
            }
        }
    }
}

/// Pushes to `changes` what turns map `old` into `new`: `change(key, Some(value))` for each
/// entry new or different, then `change(key, None)` for each entry gone.
fn diff_maps<K: Ord, V: PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
    changes: &mut Vec<RouteChange>,
    change: impl Fn(&K, Option<&V>) -> RouteChange,
) {
    for (key, value) in new {
        if old.get(key) != Some(value) {
            changes.push(change(key, Some(value)));
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            changes.push(change(key, None));
        }
    }
}

/// Sets `map[key]` to `value`, or removes the entry when `value` is `None`.
fn set<K: Ord + Clone, V: Clone>(map: &mut BTreeMap<K, V>, key: &K, value: &Option<V>) {
    match value {
        Some(v) => map.insert(key.clone(), v.clone()),
        None => map.remove(key),
    };
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
                            services: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    fn published(service: &str, backends: &[u8]) -> PublishedPort {
        PublishedPort {
            service_id: service.into(),
            target_port: 80,
            proxy_protocol: false,
            backends: backends
                .iter()
                .map(|last| Backend {
                    task_id: format!("task{last}"),
                    address: Ipv4Addr::new(10, 0, 0, *last),
                })
                .collect(),
        }
    }

    #[test]
    fn published_ports_and_the_ingress_address_travel_in_diffs() {
        let tcp = |port| PortKey {
            protocol: Protocol::Tcp,
            port,
        };
        let mut old = table(&[("a", 1)], &[]);
        old.published.insert(tcp(8080), published("s1", &[2, 3]));
        old.published.insert(tcp(9090), published("s2", &[4]));
        let mut new = old.clone();
        new.published.insert(tcp(8080), published("s1", &[3]));
        new.published.remove(&tcp(9090));
        new.ingress = Some(IngressAddress {
            network_id: "ing".into(),
            address: Ipv4Addr::new(10, 0, 0, 9),
        });
        let changes = old.diff(&new);
        assert_eq!(changes.len(), 3);
        let mut applied = old.clone();
        applied.apply(&changes);
        assert_eq!(applied, new);
        // Keys are JSON object keys: "tcp/8080".
        let json = serde_json::to_value(&new).unwrap();
        assert!(json["published"]["tcp/8080"].is_object());
        let back: RouteTable = serde_json::from_value(json).unwrap();
        assert_eq!(back, new);
        assert!("sctp/1".parse::<PortKey>().is_err());
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
        assert!(info.stack_tap_name().len() <= 15 && info.balancer_tap_name().len() <= 15);
    }
}
