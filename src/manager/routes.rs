//! The route compiler: from the store to the [`RouteTable`] one node's data plane works from.
//!
//! A node is on a network while one of its tasks that has not ended is attached to it. Its table
//! holds those networks with every endpoint on them: the tasks, on any node, that have an address
//! there, are placed and have not ended, on nodes that are up. A task that ends or a node that
//! goes down leaves the table with the store change that says so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bollard::models::{NodeState, TaskState};

use crate::net::routes::{Endpoint, NetworkInfo, NetworkRoutes, RouteTable, mac_for};
use crate::store::state::rank;
use crate::store::{ClusterState, Network, Node, Task};

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
    let joined: BTreeSet<&str> = state
        .tasks
        .values()
        .filter(|t| t.node_id.as_deref() == Some(node_id) && !t.is_terminal())
        .flat_map(|t| t.networks.iter().map(|n| n.network_id.as_str()))
        .collect();
    let mut table = RouteTable {
        nodes: BTreeMap::new(),
        networks: joined
            .iter()
            .filter_map(|id| state.networks.get(*id))
            .map(|n| {
                let routes = NetworkRoutes {
                    info: network_info(n),
                    endpoints: BTreeMap::new(),
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
            network.endpoints.insert(
                address,
                Endpoint {
                    address,
                    mac: mac_for(address),
                    node_id: node.id.clone(),
                    task_id: task.id.clone(),
                    service_id: task.service_id.clone(),
                },
            );
            table.nodes.insert(node.id.clone(), addr);
        }
    }
    table
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
}
