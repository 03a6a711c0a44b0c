//! The route compiler: from the store to the [`RouteTable`] one node's data plane works from.
//!
//! A node is on a network while one of its tasks that has not ended is attached to it. Its table
//! holds those networks with every endpoint on them: the tasks, on any node, that have an address
//! there, are placed and have not ended, on nodes that are up. A task that ends or a node that
//! goes down leaves the table with the store change that says so.
//!
//! While some service publishes a port through the routing mesh, every up node is also on the
//! ingress network, whether or not it runs a task there: the table holds it with every up
//! node's own ingress address as an endpoint besides the tasks', this node's ingress address,
//! and every published port with the service's running tasks as its backends.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use bollard::models::{EndpointPortConfig, EndpointPortConfigProtocolEnum, NodeState, TaskState};

use crate::net::routes::{
    Backend, Endpoint, IngressAddress, NetworkInfo, NetworkRoutes, PortKey, Protocol,
    PublishedPort, RouteTable, ServiceRoutes,
};
use crate::store::state::{is_ingress_port, port_protocol, rank};
use crate::store::{ClusterState, Network, Node, Service, Task};

/// The service label that asks the mesh to start each TCP connection to a backend with a PROXY
/// protocol header (value `v2`), so the backend sees the client's address.
pub const PROXY_PROTOCOL_LABEL: &str = "com.shoal.mesh.proxy-protocol";

/// The data plane's view of a stored network.
pub fn network_info(network: &Network) -> NetworkInfo {
    NetworkInfo {
        id: network.id.clone(),
        name: network.name().to_string(),
        vni: network.vni,
        subnet: network.subnet,
        gateway: network.gateway,
        mtu: network.mtu,
    }
}

/// The route table of `node_id`.
pub fn route_table_for(state: &ClusterState, node_id: &str) -> RouteTable {
    let mut joined: BTreeSet<&str> = state
        .tasks
        .values()
        .filter(|t| t.node_id.as_deref() == Some(node_id) && !t.is_terminal())
        .flat_map(|t| t.networks.iter().map(|n| n.network_id.as_str()))
        .collect();
    let mesh = mesh_network(state, node_id);
    if let Some(ingress) = mesh {
        joined.insert(&ingress.id);
    }
    let mut table = RouteTable {
        nodes: BTreeMap::new(),
        networks: joined
            .iter()
            .filter_map(|id| state.networks.get(*id))
            .map(|n| {
                let routes = NetworkRoutes {
                    info: network_info(n),
                    endpoints: BTreeMap::new(),
                    services: BTreeMap::new(),
                };
                (n.id.clone(), routes)
            })
            .collect(),
        ..Default::default()
    };
    for task in state.tasks.values().filter(|t| is_endpoint(t)) {
        let Some(node) = task.node_id.as_deref().and_then(|id| state.nodes.get(id)) else {
            continue;
        };
        let Some(addr) = underlay_addr(node) else {
            continue;
        };
        for attachment in &task.networks {
            let Some(network) = table.networks.get_mut(&attachment.network_id) else {
                continue;
            };
            let address = attachment.address.ip();
            let endpoint = Endpoint::new(address, &node.id, &task.id, &task.service_id);
            network.endpoints.insert(address, endpoint);
            table.nodes.insert(node.id.clone(), addr);
        }
    }
    if let Some(ingress) = mesh {
        add_mesh(state, node_id, ingress, &mut table);
    }
    add_services(state, node_id, &mut table);
    table
}

/// Adds to each network of the table but ingress what the node's balancer there needs: every
/// up node's balancer address as an endpoint, this node's own, and the network's services with
/// their names, VIPs and running tasks (what DNS answers).
fn add_services(state: &ClusterState, node_id: &str, table: &mut RouteTable) {
    for (network_id, routes) in &mut table.networks {
        if state
            .networks
            .get(network_id)
            .is_none_or(Network::is_ingress)
        {
            continue;
        }
        for node in state.nodes.values() {
            let Some(addr) = underlay_addr(node) else {
                continue;
            };
            for own in node
                .balancers
                .iter()
                .filter(|a| &a.network_id == network_id)
            {
                let address = own.address.ip();
                add_node_endpoint(&mut table.nodes, routes, node, addr, address);
                if node.id == node_id {
                    table.balancers.insert(network_id.clone(), address);
                }
            }
        }
        routes.services = services_on(state, network_id);
    }
}

/// Puts a node's own `address` on a network (its ingress or balancer address) among the
/// network's `routes` as an endpoint of no task, and the node in `nodes` at `underlay`.
fn add_node_endpoint(
    nodes: &mut BTreeMap<String, IpAddr>,
    routes: &mut NetworkRoutes,
    node: &Node,
    underlay: IpAddr,
    address: Ipv4Addr,
) {
    routes
        .endpoints
        .insert(address, Endpoint::new(address, &node.id, "", ""));
    nodes.insert(node.id.clone(), underlay);
}

/// The services attached to the network `network_id`, by ID: their names and aliases there,
/// their VIP there, and their running tasks at their addresses there.
fn services_on(state: &ClusterState, network_id: &str) -> BTreeMap<String, ServiceRoutes> {
    let mut tasks = running_tasks_on(state, network_id);
    let mut services = BTreeMap::new();
    for service in state.services.values() {
        let attachments = service
            .spec
            .task_template
            .as_ref()
            .and_then(|t| t.networks.as_ref());
        let Some(attachment) = attachments.into_iter().flatten().find(|a| {
            let target = a.target.as_deref().unwrap_or_default();
            state.network(target).is_some_and(|n| n.id == network_id)
        }) else {
            continue;
        };
        let vip = service
            .endpoint
            .virtual_ips
            .iter()
            .find(|v| v.network_id == network_id)
            .map(|v| v.address.ip());
        let routes = ServiceRoutes {
            name: service.spec.name.clone().unwrap_or_default(),
            aliases: attachment.aliases.clone().unwrap_or_default(),
            vip,
            tasks: tasks.remove(service.id.as_str()).unwrap_or_default(),
        };
        services.insert(service.id.clone(), routes);
    }
    services
}

/// The tasks that can take connections on the network `network_id`, by service, each service's
/// by task ID (a stable order for Maglev), at their addresses there.
fn running_tasks_on<'a>(
    state: &'a ClusterState,
    network_id: &str,
) -> BTreeMap<&'a str, Vec<Backend>> {
    let mut backends: BTreeMap<&str, Vec<Backend>> = BTreeMap::new();
    // Tasks are kept by ID, so each service's backends come out in that order.
    for task in state.tasks.values().filter(|t| is_backend(state, t)) {
        let Some(attachment) = task.networks.iter().find(|n| n.network_id == network_id) else {
            continue;
        };
        backends
            .entry(task.service_id.as_str())
            .or_default()
            .push(Backend {
                task_id: task.id.clone(),
                address: attachment.address.ip(),
            });
    }
    backends
}

/// The ingress network, if `node_id` is up and some service publishes a port through the
/// routing mesh: then the node answers on the published ports and is on that network.
fn mesh_network<'a>(state: &'a ClusterState, node_id: &str) -> Option<&'a Network> {
    state.nodes.get(node_id).and_then(underlay_addr)?;
    let publishes = state
        .services
        .values()
        .any(|s| s.endpoint.ports.iter().any(is_ingress_port));
    if !publishes {
        return None;
    }
    state.ingress_network()
}

/// Adds the routing mesh to the table of `node_id`, which holds the `ingress` network: every up
/// node's ingress address as an endpoint, this node's own, and the published ports.
fn add_mesh(state: &ClusterState, node_id: &str, ingress: &Network, table: &mut RouteTable) {
    let routes = table
        .networks
        .get_mut(&ingress.id)
        .expect("the mesh's table holds the ingress network");
    for node in state.nodes.values() {
        let (Some(addr), Some(own)) = (underlay_addr(node), state.node_ingress(node)) else {
            continue;
        };
        let address = own.address.ip();
        add_node_endpoint(&mut table.nodes, routes, node, addr, address);
        if node.id == node_id {
            table.ingress = Some(IngressAddress {
                network_id: ingress.id.clone(),
                address,
            });
        }
    }
    table.published = published_ports(state, ingress);
}

/// Every port published through the routing mesh, over TCP or UDP, with its backends: the
/// service's tasks that run (and are meant to) on up nodes, at their ingress addresses, by
/// task ID.
fn published_ports(state: &ClusterState, ingress: &Network) -> BTreeMap<PortKey, PublishedPort> {
    let publishing: BTreeMap<&str, &Service> = state
        .services
        .values()
        .filter(|s| s.endpoint.ports.iter().any(is_ingress_port))
        .map(|s| (s.id.as_str(), s))
        .collect();
    let backends = running_tasks_on(state, &ingress.id);
    let mut published = BTreeMap::new();
    for (id, service) in publishing {
        let proxy_protocol = service
            .spec
            .labels
            .as_ref()
            .and_then(|l| l.get(PROXY_PROTOCOL_LABEL))
            .is_some_and(|v| v == "v2");
        for port in service.endpoint.ports.iter().filter(|p| is_ingress_port(p)) {
            let Some((key, target_port)) = mesh_port(port) else {
                continue;
            };
            published.insert(
                key,
                PublishedPort {
                    service_id: id.to_string(),
                    target_port,
                    proxy_protocol,
                    backends: backends.get(id).cloned().unwrap_or_default(),
                },
            );
        }
    }
    published
}

/// The key and target port of a port the mesh carries: TCP or UDP, both numbers set.
fn mesh_port(port: &EndpointPortConfig) -> Option<(PortKey, u16)> {
    let protocol = match port_protocol(port) {
        EndpointPortConfigProtocolEnum::TCP => Protocol::Tcp,
        EndpointPortConfigProtocolEnum::UDP => Protocol::Udp,
        _ => return None,
    };
    let number = |n: Option<i64>| u16::try_from(n?).ok().filter(|&n| n > 0);
    let key = PortKey {
        protocol,
        port: number(port.published_port)?,
    };
    Some((key, number(port.target_port)?))
}

/// Whether `task` can take connections: running, meant to run, on a node that is up.
fn is_backend(state: &ClusterState, task: &Task) -> bool {
    let node = task.node_id.as_deref().and_then(|id| state.nodes.get(id));
    task.state() == TaskState::RUNNING
        && task.desired_state == TaskState::RUNNING
        && node.and_then(underlay_addr).is_some()
}

/// The networks `task` is attached to, as the data plane sees them.
pub fn task_networks(state: &ClusterState, task: &Task) -> Vec<NetworkInfo> {
    task.networks
        .iter()
        .filter_map(|a| state.networks.get(&a.network_id))
        .map(network_info)
        .collect()
}

/// Whether `task` is an endpoint: placed, not ended.
fn is_endpoint(task: &Task) -> bool {
    rank(task.state()) >= rank(TaskState::ASSIGNED) && !task.is_terminal()
}

/// The address an up node takes VXLAN traffic at; `None` while it is down.
fn underlay_addr(node: &Node) -> Option<IpAddr> {
    if node.status.state != Some(NodeState::READY) {
        return None;
    }
    node.status.addr.as_deref()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::routes::RouteChange;
    use crate::store::{Meta, TaskNetwork};
    use bollard::models::{NodeStatus, TaskStatus};

    fn node(id: &str, last: u8, state: NodeState) -> Node {
        Node {
            id: id.into(),
            meta: Meta::default(),
            spec: Default::default(),
            description: Default::default(),
            status: NodeStatus {
                state: Some(state),
                addr: Some(format!("192.168.77.{last}")),
                ..Default::default()
            },
            manager: None,
            ingress: None,
            balancers: Vec::new(),
        }
    }

    fn network(id: &str, vni: u32, third: u8) -> Network {
        crate::manager::ipam::tests::net(id, &format!("10.0.{third}.0/24"), vni)
    }

    fn task(id: &str, node: &str, state: TaskState, attached: &[(&str, &str)]) -> Task {
        Task {
            id: id.into(),
            meta: Meta::default(),
            service_id: "svc".into(),
            slot: 1,
            node_id: Some(node.into()),
            generation: 1,
            spec: Default::default(),
            desired_state: TaskState::RUNNING,
            status: TaskStatus {
                state: Some(state),
                ..Default::default()
            },
            networks: attached
                .iter()
                .map(|(network, address)| TaskNetwork {
                    network_id: network.to_string(),
                    address: address.parse().unwrap(),
                    aliases: Vec::new(),
                })
                .collect(),
        }
    }

    fn state(nodes: Vec<Node>, networks: Vec<Network>, tasks: Vec<Task>) -> ClusterState {
        ClusterState {
            nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
            networks: networks.into_iter().map(|n| (n.id.clone(), n)).collect(),
            tasks: tasks.into_iter().map(|t| (t.id.clone(), t)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_node_gets_the_networks_of_its_tasks_with_every_endpoint_on_them() {
        let state = state(
            vec![
                node("a", 11, NodeState::READY),
                node("b", 12, NodeState::READY),
            ],
            vec![network("n1", 4097, 1), network("n2", 4098, 2)],
            vec![
                task("t1", "a", TaskState::RUNNING, &[("n1", "10.0.1.2/24")]),
                task("t2", "b", TaskState::RUNNING, &[("n1", "10.0.1.3/24")]),
                task("t3", "b", TaskState::RUNNING, &[("n2", "10.0.2.2/24")]),
            ],
        );
        let table = route_table_for(&state, "a");
        assert_eq!(table.networks.keys().collect::<Vec<_>>(), ["n1"]);
        let endpoints = &table.networks["n1"].endpoints;
        assert_eq!(endpoints.len(), 2);
        let remote = &endpoints[&"10.0.1.3".parse().unwrap()];
        assert_eq!(
            (remote.node_id.as_str(), remote.task_id.as_str()),
            ("b", "t2")
        );
        assert_eq!(remote.mac, [0x02, 0x42, 10, 0, 1, 3]);
        assert_eq!(table.nodes["b"], "192.168.77.12".parse::<IpAddr>().unwrap());
        assert_eq!(table.networks["n1"].info.vni, 4097);
        // b is on both networks.
        assert_eq!(route_table_for(&state, "b").networks.len(), 2);
    }

    #[test]
    fn ended_tasks_and_down_nodes_leave_the_table() {
        let state = state(
            vec![
                node("a", 11, NodeState::READY),
                node("b", 12, NodeState::DOWN),
                node("c", 13, NodeState::READY),
            ],
            vec![network("n1", 4097, 1)],
            vec![
                task("t1", "a", TaskState::RUNNING, &[("n1", "10.0.1.2/24")]),
                task("t2", "b", TaskState::RUNNING, &[("n1", "10.0.1.3/24")]),
                task("t3", "c", TaskState::SHUTDOWN, &[("n1", "10.0.1.4/24")]),
                task("t4", "a", TaskState::PENDING, &[("n1", "10.0.1.5/24")]),
            ],
        );
        let table = route_table_for(&state, "a");
        let addresses: Vec<String> = table.networks["n1"]
            .endpoints
            .keys()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(addresses, ["10.0.1.2"]);
        assert_eq!(table.nodes.keys().collect::<Vec<_>>(), ["a"]);
        // A node whose only task ended is on no network.
        assert!(route_table_for(&state, "c").networks.is_empty());
    }

    /// Node `id` at 192.168.77.`last`, with its ingress address 10.0.0.`last`.
    fn mesh_node(id: &str, last: u8, state: NodeState) -> Node {
        Node {
            ingress: Some(crate::store::NetworkAddress {
                network_id: "ing".into(),
                address: format!("10.0.0.{last}/24").parse().unwrap(),
            }),
            ..node(id, last, state)
        }
    }

    fn port(published: i64, target: i64, protocol: &str, mode: &str) -> EndpointPortConfig {
        EndpointPortConfig {
            protocol: Some(protocol.parse().unwrap()),
            target_port: Some(target),
            published_port: Some(published),
            publish_mode: Some(mode.parse().unwrap()),
            ..Default::default()
        }
    }

    /// `svc` publishes 8080/tcp and 5353/udp through the mesh (PROXY protocol on) and 9000/tcp
    /// on its hosts. Nodes a, b and d are up, c is down; d runs nothing. Of svc's tasks on the
    /// ingress network, t1 (b) and t2 (a) run; t3 runs on the down node, t4 is starting, t5
    /// is being stopped.
    fn meshed() -> ClusterState {
        let mut ingress = network("ing", 4096, 0);
        ingress.spec.ingress = Some(true);
        let on_ingress = |id, node, state, last: u8| {
            let address = format!("10.0.0.{last}/24");
            task(id, node, state, &[("ing", address.as_str())])
        };
        let mut stopping = on_ingress("t5", "b", TaskState::RUNNING, 14);
        stopping.desired_state = TaskState::SHUTDOWN;
        let mut state = state(
            vec![
                mesh_node("a", 2, NodeState::READY),
                mesh_node("b", 3, NodeState::READY),
                mesh_node("c", 4, NodeState::DOWN),
                mesh_node("d", 5, NodeState::READY),
            ],
            vec![ingress],
            vec![
                on_ingress("t2", "a", TaskState::RUNNING, 10),
                on_ingress("t1", "b", TaskState::RUNNING, 11),
                on_ingress("t3", "c", TaskState::RUNNING, 12),
                on_ingress("t4", "a", TaskState::STARTING, 13),
                stopping,
            ],
        );
        let service = Service {
            id: "svc".into(),
            meta: Meta::default(),
            spec: bollard::models::ServiceSpec {
                labels: Some([(PROXY_PROTOCOL_LABEL.to_string(), "v2".to_string())].into()),
                ..Default::default()
            },
            previous_spec: None,
            generation: 1,
            update_status: None,
            endpoint: crate::store::ServiceEndpoint {
                ports: vec![
                    port(8080, 80, "tcp", "ingress"),
                    port(5353, 53, "udp", "ingress"),
                    port(9000, 90, "tcp", "host"),
                ],
                virtual_ips: Vec::new(),
            },
        };
        state.services.insert(service.id.clone(), service);
        state
    }

    fn backends(table: &RouteTable, key: &str) -> Vec<(String, String)> {
        table.published[&key.parse().unwrap()]
            .backends
            .iter()
            .map(|b| (b.task_id.clone(), b.address.to_string()))
            .collect()
    }

    fn endpoints(table: &RouteTable, network: &str) -> Vec<(String, String, String)> {
        table.networks[network]
            .endpoints
            .values()
            .map(|e| (e.address.to_string(), e.node_id.clone(), e.task_id.clone()))
            .collect()
    }

    #[test]
    fn every_up_node_gets_the_mesh_with_the_running_tasks_as_backends() {
        let state = meshed();
        // d runs no task, yet it is on the ingress network.
        let table = route_table_for(&state, "d");
        assert_eq!(table.networks.keys().collect::<Vec<_>>(), ["ing"]);
        let found = endpoints(&table, "ing");
        let expected: Vec<(String, String, String)> = [
            ("10.0.0.2", "a", ""),
            ("10.0.0.3", "b", ""),
            ("10.0.0.5", "d", ""),
            ("10.0.0.10", "a", "t2"),
            ("10.0.0.11", "b", "t1"),
            ("10.0.0.13", "a", "t4"),
            ("10.0.0.14", "b", "t5"),
        ]
        .iter()
        .map(|(a, n, t)| (a.to_string(), n.to_string(), t.to_string()))
        .collect();
        assert_eq!(found, expected);
        let a = &table.networks["ing"].endpoints[&"10.0.0.2".parse().unwrap()];
        assert_eq!(
            (a.mac, a.service_id.as_str()),
            ([0x02, 0x42, 10, 0, 0, 2], "")
        );
        assert_eq!(table.nodes.keys().collect::<Vec<_>>(), ["a", "b", "d"]);
        let ingress = table.ingress.as_ref().unwrap();
        assert_eq!(
            (ingress.network_id.as_str(), ingress.address.to_string()),
            ("ing", "10.0.0.5".to_string())
        );
        // The mesh's ports, not the host-published one; running tasks by task ID.
        let keys: Vec<String> = table.published.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["tcp/8080", "udp/5353"]);
        let expected = [
            ("t1".to_string(), "10.0.0.11".to_string()),
            ("t2".to_string(), "10.0.0.10".to_string()),
        ];
        assert_eq!(backends(&table, "tcp/8080"), expected);
        assert_eq!(backends(&table, "udp/5353"), expected);
        let tcp = &table.published[&"tcp/8080".parse().unwrap()];
        assert_eq!((tcp.service_id.as_str(), tcp.target_port), ("svc", 80));
        assert!(tcp.proxy_protocol);
        // Every up node answers the same ports with the same backends.
        assert_eq!(route_table_for(&state, "a").published, table.published);
        // A down node does not take part: only the network of its own task.
        let down = route_table_for(&state, "c");
        assert!(down.published.is_empty() && down.ingress.is_none());
        let tasks: Vec<String> = endpoints(&down, "ing").into_iter().map(|e| e.2).collect();
        assert_eq!(tasks, ["t2", "t1", "t4", "t5"]);
    }

    #[test]
    fn backends_leave_when_their_task_stops_running_or_their_node_goes_down() {
        let mut state = meshed();
        state.tasks.get_mut("t1").unwrap().status.state = Some(TaskState::FAILED);
        let table = route_table_for(&state, "d");
        assert_eq!(
            backends(&table, "tcp/8080"),
            [("t2".into(), "10.0.0.10".into())]
        );
        let mut state = meshed();
        state.nodes.get_mut("a").unwrap().status.state = Some(NodeState::DOWN);
        let table = route_table_for(&state, "d");
        assert_eq!(
            backends(&table, "tcp/8080"),
            [("t1".into(), "10.0.0.11".into())]
        );
        assert!(!table.nodes.contains_key("a"));
        assert!(
            endpoints(&table, "ing")
                .iter()
                .all(|(_, node, _)| node != "a")
        );
        // The label off, no PROXY protocol.
        state.services.get_mut("svc").unwrap().spec.labels = None;
        let table = route_table_for(&state, "d");
        assert!(!table.published[&"tcp/8080".parse().unwrap()].proxy_protocol);
    }

    #[test]
    fn with_nothing_published_there_is_no_mesh() {
        let mut state = meshed();
        let service = state.services.get_mut("svc").unwrap();
        service.endpoint.ports.retain(|p| !is_ingress_port(p));
        assert_eq!(route_table_for(&state, "d"), RouteTable::default());
        // A node with tasks on the ingress network still has it, without the mesh.
        let table = route_table_for(&state, "a");
        assert!(table.published.is_empty() && table.ingress.is_none());
        assert!(
            endpoints(&table, "ing")
                .iter()
                .all(|(_, _, task)| !task.is_empty())
        );
    }

    /// Network `n1` (10.0.1.0/24) with services `web` (vip 10.0.1.2, alias `w`; tasks t1 on a
    /// running, t2 on b running, t3 on a starting) and `db` (dnsrr; task t4 on b running), and
    /// balancer addresses 10.0.1.20 for a and 10.0.1.21 for b.
    fn discovered() -> ClusterState {
        let task_of = |id, node, state, service: &str, last: u8| {
            let address = format!("10.0.1.{last}/24");
            let mut t = task(id, node, state, &[("n1", address.as_str())]);
            t.service_id = service.into();
            t
        };
        let tasks = vec![
            task_of("t1", "a", TaskState::RUNNING, "web", 3),
            task_of("t2", "b", TaskState::RUNNING, "web", 4),
            task_of("t3", "a", TaskState::STARTING, "web", 5),
            task_of("t4", "b", TaskState::RUNNING, "db", 6),
        ];
        let balanced = |id, last: u8| Node {
            balancers: vec![crate::store::NetworkAddress {
                network_id: "n1".into(),
                address: format!("10.0.1.{last}/24").parse().unwrap(),
            }],
            ..node(id, last, NodeState::READY)
        };
        let mut state = state(
            vec![balanced("a", 20), balanced("b", 21)],
            vec![network("n1", 4097, 1)],
            tasks,
        );
        let service = |id: &str, alias: Option<&str>, vip: Option<&str>| {
            let spec = bollard::models::ServiceSpec {
                name: Some(format!("stack_{id}")),
                task_template: Some(bollard::models::TaskSpec {
                    networks: Some(vec![bollard::models::NetworkAttachmentConfig {
                        target: Some("net-n1".into()),
                        aliases: alias.map(|a| vec![a.to_string()]),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut service = crate::store::state::test_service(id, spec);
            service.endpoint.virtual_ips = vip
                .map(|v| crate::store::NetworkAddress {
                    network_id: "n1".into(),
                    address: v.parse().unwrap(),
                })
                .into_iter()
                .collect();
            service
        };
        for s in [
            service("web", Some("w"), Some("10.0.1.2/24")),
            service("db", None, None),
        ] {
            state.services.insert(s.id.clone(), s);
        }
        state
    }

    #[test]
    fn a_network_carries_its_services_names_vips_and_running_tasks() {
        let state = discovered();
        let table = route_table_for(&state, "a");
        let services = &table.networks["n1"].services;
        let web = &services["web"];
        assert_eq!(web.name, "stack_web");
        assert_eq!(web.aliases, ["w"]);
        assert_eq!(web.vip, Some("10.0.1.2".parse().unwrap()));
        let tasks: Vec<(&str, String)> = web
            .tasks
            .iter()
            .map(|b| (b.task_id.as_str(), b.address.to_string()))
            .collect();
        assert_eq!(
            tasks,
            [("t1", "10.0.1.3".into()), ("t2", "10.0.1.4".into())]
        );
        assert_eq!(services["db"].vip, None);
        assert_eq!(services["db"].tasks.len(), 1);
        // The same update that stops a task takes it out of the names.
        let mut stopped = state.clone();
        stopped.tasks.get_mut("t2").unwrap().status.state = Some(TaskState::FAILED);
        let after = route_table_for(&stopped, "a");
        assert_eq!(after.networks["n1"].services["web"].tasks.len(), 1);
        let changes = table.diff(&after);
        assert!(
            changes.iter().any(
                |c| matches!(c, RouteChange::Service { service_id, .. } if service_id == "web")
            )
        );
    }

    #[test]
    fn every_node_on_a_network_has_its_balancer_address_there() {
        let state = discovered();
        let table = route_table_for(&state, "a");
        assert_eq!(table.balancers["n1"].to_string(), "10.0.1.20");
        assert_eq!(
            route_table_for(&state, "b").balancers["n1"].to_string(),
            "10.0.1.21"
        );
        let balancers: Vec<(String, String, String)> = endpoints(&table, "n1")
            .into_iter()
            .filter(|(_, _, task)| task.is_empty())
            .collect();
        assert_eq!(
            balancers,
            [
                ("10.0.1.20".into(), "a".into(), String::new()),
                ("10.0.1.21".into(), "b".into(), String::new())
            ]
        );
        // A node down: its balancer address leaves the others' tables.
        let mut down = state.clone();
        down.nodes.get_mut("b").unwrap().status.state = Some(NodeState::DOWN);
        assert!(
            !route_table_for(&down, "a").networks["n1"]
                .endpoints
                .contains_key(&"10.0.1.21".parse().unwrap())
        );
    }
}
