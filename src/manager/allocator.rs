//! The allocator: gives each new task one address on every overlay it attaches to and makes it
//! pending, before the scheduler (or, for a global service's task, the node it was made for)
//! takes it. Tasks that were told to stop before they reached a node are ended here, so that
//! they release their addresses. Every node gets its own address on the ingress network (the
//! routing mesh's source address there), first, as docker gives its `ingress-sbox` the lowest.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use bollard::models::{TaskState, TaskStatus};
use ipnetwork::Ipv4Network;

use super::ipam::free_address;
use crate::store::state::{publishes_through_mesh, rank};
use crate::store::{Change, ClusterState, Network, NetworkAddress, Task, TaskNetwork};

/// What the allocator changes in `state`, with `at` as the time of every status.
pub fn allocate(state: &ClusterState, at: &str) -> Vec<Change> {
    let status = |task_state, message: &str, err: Option<String>| TaskStatus {
        timestamp: Some(at.to_string()),
        state: Some(task_state),
        message: Some(message.to_string()),
        err,
        ..Default::default()
    };
    let mut held: BTreeMap<&str, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let mut changes = node_ingress_addresses(state, &mut held);
    changes.extend(node_balancer_addresses(state, &mut held));
    for task in state.tasks.values() {
        if task.desired_state != TaskState::RUNNING {
            if !task.is_terminal() && rank(task.state()) < rank(TaskState::ASSIGNED) {
                changes.push(Change::TaskStatus {
                    task_id: task.id.clone(),
                    status: status(TaskState::SHUTDOWN, "shutdown before assignment", None),
                });
            }
            continue;
        }
        if task.state() != TaskState::NEW {
            continue;
        }
        match addresses(state, task, &mut held) {
            Ok(networks) => changes.push(Change::TaskAllocate {
                task_id: task.id.clone(),
                networks,
                status: status(TaskState::PENDING, "pending task scheduling", None),
            }),
            // Say it once: the same reason again would only churn the log.
            Err(reason) if task.status.err.as_deref() != Some(reason.as_str()) => {
                changes.push(Change::TaskStatus {
                    task_id: task.id.clone(),
                    status: status(TaskState::NEW, "created", Some(reason)),
                })
            }
            Err(_) => {}
        }
    }
    changes
}

/// An ingress address for every node that has none on the current ingress network, counting
/// those in `held` (as [`addresses`] does).
fn node_ingress_addresses<'a>(
    state: &'a ClusterState,
    held: &mut BTreeMap<&'a str, BTreeSet<Ipv4Addr>>,
) -> Vec<Change> {
    let Some(ingress) = state.ingress_network() else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    for node in state.nodes.values() {
        if state.node_ingress(node).is_some() {
            continue;
        }
        let taken = held
            .entry(ingress.id.as_str())
            .or_insert_with(|| state.addresses_held(&ingress.id, None));
        let ip = match free_address(ingress, taken) {
            Ok(ip) => ip,
            Err(e) => {
                // Every round would say it again: at debug level only.
                tracing::debug!(node = %node.id, "no ingress address: {e}");
                break;
            }
        };
        taken.insert(ip);
        changes.push(Change::NodeIngress {
            node_id: node.id.clone(),
            address: NetworkAddress {
                network_id: ingress.id.clone(),
                address: Ipv4Network::new(ip, ingress.subnet.prefix())
                    .expect("a subnet's prefix length is valid"),
            },
        });
    }
    changes
}

/// A balancer address for every node on every overlay other than ingress where one of its
/// tasks that has not ended is attached, counting those in `held`; and the address back from
/// every node on a network where it has no such task any more (so a /24 does not run out of
/// addresses kept by nodes that left it, as docker's did).
fn node_balancer_addresses<'a>(
    state: &'a ClusterState,
    held: &mut BTreeMap<&'a str, BTreeSet<Ipv4Addr>>,
) -> Vec<Change> {
    let wanted: BTreeSet<(&str, &str)> = state
        .tasks
        .values()
        .filter(|t| !t.is_terminal())
        .filter_map(|t| Some((t.node_id.as_deref()?, t)))
        .flat_map(|(node, t)| {
            t.networks
                .iter()
                .map(move |n| (node, n.network_id.as_str()))
        })
        .filter(|(_, network)| {
            state
                .networks
                .get(*network)
                .is_some_and(|n| !n.is_ingress())
        })
        .collect();
    let mut changes = Vec::new();
    for node in state.nodes.values() {
        for gone in node
            .balancers
            .iter()
            .filter(|a| !wanted.contains(&(&node.id, &a.network_id)))
        {
            changes.push(Change::NodeBalancer {
                node_id: node.id.clone(),
                network_id: gone.network_id.clone(),
                address: None,
            });
        }
    }
    for (node_id, network_id) in wanted {
        let has_one = state
            .nodes
            .get(node_id)
            .is_some_and(|n| n.balancers.iter().any(|a| a.network_id == network_id));
        if has_one || !state.nodes.contains_key(node_id) {
            continue;
        }
        let network = &state.networks[network_id];
        let taken = held
            .entry(network.id.as_str())
            .or_insert_with(|| state.addresses_held(&network.id, None));
        match free_address(network, taken) {
            Ok(ip) => {
                taken.insert(ip);
                changes.push(Change::NodeBalancer {
                    node_id: node_id.to_string(),
                    network_id: network_id.to_string(),
                    address: Some(
                        Ipv4Network::new(ip, network.subnet.prefix())
                            .expect("a subnet's prefix length is valid"),
                    ),
                });
            }
            // Every round would say it again: at debug level only.
            Err(e) => {
                tracing::debug!(node = %node_id, network = %network_id, "no balancer address: {e}")
            }
        }
    }
    changes
}

/// The networks `task` attaches to, each with the aliases it has there: the ingress network
/// first when its service publishes ports through the routing mesh (as docker), then those of
/// its spec. An unknown network is an error.
pub fn wanted_networks<'a>(
    state: &'a ClusterState,
    task: &Task,
) -> Result<Vec<(&'a Network, Vec<String>)>, String> {
    let mut wanted: Vec<(&Network, Vec<String>)> = Vec::new();
    let publishes = state
        .services
        .get(&task.service_id)
        .is_some_and(publishes_through_mesh);
    if publishes {
        if let Some(ingress) = state.ingress_network() {
            wanted.push((ingress, Vec::new()));
        }
    }
    for attachment in task.spec.networks.iter().flatten() {
        let target = attachment.target.as_deref().unwrap_or_default();
        let network = state
            .network(target)
            .ok_or_else(|| format!("network {target} not found"))?;
        if wanted.iter().all(|(n, _)| n.id != network.id) {
            wanted.push((network, attachment.aliases.clone().unwrap_or_default()));
        }
    }
    Ok(wanted)
}

/// One free address for `task` on each network it wants, counting those in `held` (per
/// network ID, filled from the state on first use and by every address handed out).
fn addresses<'a>(
    state: &'a ClusterState,
    task: &Task,
    held: &mut BTreeMap<&'a str, BTreeSet<Ipv4Addr>>,
) -> Result<Vec<TaskNetwork>, String> {
    let wanted = wanted_networks(state, task)?;
    let mut chosen = Vec::new();
    for (network, aliases) in &wanted {
        let taken = held
            .entry(network.id.as_str())
            .or_insert_with(|| state.addresses_held(&network.id, None));
        let ip = free_address(network, taken).map_err(|e| e.to_string())?;
        chosen.push(TaskNetwork {
            network_id: network.id.clone(),
            address: Ipv4Network::new(ip, network.subnet.prefix())
                .expect("a subnet's prefix length is valid"),
            aliases: aliases.clone(),
        });
    }
    // Only now, when the task gets all of them, do its addresses count as taken.
    for ((network, _), attachment) in wanted.iter().zip(&chosen) {
        held.entry(network.id.as_str())
            .or_default()
            .insert(attachment.address.ip());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::objects::Meta;
    use crate::store::{Object, Proposal};
    use bollard::models::{NetworkAttachmentConfig, TaskSpec};

    fn network(id: &str, subnet: &str) -> Network {
        super::super::ipam::tests::net(id, subnet, 4096 + id.len() as u32 + id.as_bytes()[0] as u32)
    }

    fn task(id: &str, networks: &[&str]) -> Task {
        Task {
            id: id.into(),
            meta: Meta::default(),
            service_id: "svc".into(),
            slot: 1,
            node_id: None,
            generation: 1,
            spec: TaskSpec {
                networks: Some(
                    networks
                        .iter()
                        .map(|n| NetworkAttachmentConfig {
                            target: Some(n.to_string()),
                            aliases: Some(vec!["web".into()]),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            },
            desired_state: TaskState::RUNNING,
            status: TaskStatus {
                state: Some(TaskState::NEW),
                ..Default::default()
            },
            networks: Vec::new(),
        }
    }

    fn state(networks: Vec<Network>, tasks: Vec<Task>) -> ClusterState {
        let mut state = ClusterState::default();
        for object in networks
            .into_iter()
            .map(Object::Network)
            .chain(tasks.into_iter().map(Object::Task))
        {
            state.insert(object);
        }
        state
    }

    fn apply(state: &mut ClusterState, changes: Vec<Change>) {
        state.apply(&Proposal { changes }, 9).unwrap();
    }

    /// Allocates and applies what the allocator decided.
    fn step(state: &mut ClusterState) {
        let changes = allocate(state, "now");
        apply(state, changes);
    }

    fn address(state: &ClusterState, task: &str) -> Vec<String> {
        state.tasks[task]
            .networks
            .iter()
            .map(|n| n.address.to_string())
            .collect()
    }

    #[test]
    fn tasks_get_distinct_lowest_addresses_and_become_pending() {
        let mut s = state(
            vec![network("a", "10.0.1.0/24")],
            vec![task("t1", &["a"]), task("t2", &["a"]), task("t3", &[])],
        );
        let changes = allocate(&s, "now");
        assert_eq!(changes.len(), 3);
        apply(&mut s, changes);
        assert_eq!(address(&s, "t1"), ["10.0.1.2/24"]);
        assert_eq!(address(&s, "t2"), ["10.0.1.3/24"]);
        assert!(address(&s, "t3").is_empty());
        assert!(s.tasks.values().all(|t| t.state() == TaskState::PENDING));
        assert_eq!(s.tasks["t1"].networks[0].aliases, ["web"]);
        assert!(allocate(&s, "later").is_empty(), "allocated tasks stay so");
    }

    #[test]
    fn ended_tasks_release_their_addresses() {
        let mut s = state(vec![network("a", "10.0.1.0/24")], vec![task("t1", &["a"])]);
        step(&mut s);
        s.tasks.get_mut("t1").unwrap().status.state = Some(TaskState::FAILED);
        s.insert(Object::Task(task("t2", &["a"])));
        step(&mut s);
        assert_eq!(address(&s, "t2"), ["10.0.1.2/24"]);
    }

    #[test]
    fn an_unknown_network_or_a_full_one_leaves_the_task_new_and_says_why_once() {
        let mut s = state(
            vec![network("a", "10.0.1.0/30")],
            vec![task("t1", &["a"]), task("t2", &["a"]), task("t3", &["zz"])],
        );
        step(&mut s);
        assert_eq!(s.tasks["t1"].state(), TaskState::PENDING);
        assert_eq!(s.tasks["t2"].state(), TaskState::NEW);
        assert_eq!(
            s.tasks["t2"].status.err.as_deref(),
            Some("no available IPv4 addresses on network net-a")
        );
        assert_eq!(
            s.tasks["t3"].status.err.as_deref(),
            Some("network zz not found")
        );
        assert!(allocate(&s, "again").is_empty());
    }

    #[test]
    fn the_store_skips_an_allocation_of_an_address_already_held() {
        let mut s = state(
            vec![network("a", "10.0.1.0/24")],
            vec![task("t1", &["a"]), task("t2", &["a"])],
        );
        let stale = allocate(&s, "now");
        // Two allocators that decided on the same state: only the first batch applies.
        let t1_only: Vec<Change> = stale[..1].to_vec();
        apply(&mut s, t1_only);
        let conflicting = match &stale[0] {
            Change::TaskAllocate {
                networks, status, ..
            } => Change::TaskAllocate {
                task_id: "t2".into(),
                networks: networks.clone(),
                status: status.clone(),
            },
            other => panic!("unexpected {other:?}"),
        };
        apply(&mut s, vec![conflicting]);
        assert_eq!(s.tasks["t2"].state(), TaskState::NEW);
        assert!(s.tasks["t2"].networks.is_empty());
        // Nor may a task be allocated twice, or out of the subnet.
        let again = Change::TaskAllocate {
            task_id: "t1".into(),
            networks: Vec::new(),
            status: TaskStatus::default(),
        };
        apply(&mut s, vec![again]);
        assert_eq!(address(&s, "t1"), ["10.0.1.2/24"]);
        let outside = Change::TaskAllocate {
            task_id: "t2".into(),
            networks: vec![TaskNetwork {
                network_id: "a".into(),
                address: "10.0.9.9/24".parse().unwrap(),
                aliases: Vec::new(),
            }],
            status: TaskStatus::default(),
        };
        apply(&mut s, vec![outside]);
        assert!(s.tasks["t2"].networks.is_empty());
    }

    #[test]
    fn a_task_stopped_before_assignment_ends() {
        let mut t = task("t1", &[]);
        t.desired_state = TaskState::SHUTDOWN;
        let mut s = state(Vec::new(), vec![t]);
        step(&mut s);
        assert_eq!(s.tasks["t1"].state(), TaskState::SHUTDOWN);
    }

    /// A swarm with its ingress network, nodes `a` and `b`, and a service `svc` publishing a
    /// port, whose VIP on ingress is 10.0.0.2.
    fn meshed(tasks: Vec<Task>) -> ClusterState {
        let mut ingress = network("ing", "10.0.0.0/24");
        ingress.spec.ingress = Some(true);
        let mut s = state(vec![ingress], tasks);
        for id in ["a", "b"] {
            s.insert(crate::store::state::test_node(id));
        }
        s.insert(Object::Service(crate::store::Service {
            id: "svc".into(),
            meta: Meta::default(),
            spec: bollard::models::ServiceSpec {
                endpoint_spec: Some(bollard::models::EndpointSpec {
                    ports: Some(vec![bollard::models::EndpointPortConfig {
                        target_port: Some(80),
                        published_port: Some(8080),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            previous_spec: None,
            generation: 1,
            update_status: None,
            endpoint: crate::store::ServiceEndpoint {
                ports: Vec::new(),
                virtual_ips: vec![NetworkAddress {
                    network_id: "ing".into(),
                    address: "10.0.0.2/24".parse().unwrap(),
                }],
            },
        }));
        s
    }

    fn node_ingress(state: &ClusterState, node: &str) -> Option<String> {
        let address = state.nodes[node].ingress.as_ref()?;
        Some(address.address.to_string())
    }

    #[test]
    fn every_node_gets_an_ingress_address_and_tasks_get_none_of_those_or_a_vip() {
        let mut s = meshed(vec![task("t1", &[])]);
        step(&mut s);
        // The VIP is held; the nodes come first, then the task of the publishing service.
        assert_eq!(node_ingress(&s, "a").as_deref(), Some("10.0.0.3/24"));
        assert_eq!(node_ingress(&s, "b").as_deref(), Some("10.0.0.4/24"));
        assert_eq!(address(&s, "t1"), ["10.0.0.5/24"]);
        assert!(allocate(&s, "again").is_empty(), "a node keeps its address");
        // A node that joins later gets the lowest free one; one that leaves frees its own.
        s.nodes.remove("a");
        s.insert(crate::store::state::test_node("c"));
        step(&mut s);
        assert_eq!(node_ingress(&s, "c").as_deref(), Some("10.0.0.3/24"));
    }

    #[test]
    fn the_store_skips_a_node_ingress_address_taken_meanwhile() {
        let mut s = meshed(vec![task("t1", &[])]);
        let decided = allocate(&s, "now");
        // A task took 10.0.0.3 between the decision and its application.
        let mut other = task("t2", &[]);
        other.status.state = Some(TaskState::PENDING);
        other.networks = vec![TaskNetwork {
            network_id: "ing".into(),
            address: "10.0.0.3/24".parse().unwrap(),
            aliases: Vec::new(),
        }];
        s.insert(Object::Task(other));
        apply(&mut s, decided);
        assert_eq!(node_ingress(&s, "a"), None);
        assert_eq!(node_ingress(&s, "b").as_deref(), Some("10.0.0.4/24"));
        step(&mut s);
        assert_eq!(node_ingress(&s, "a").as_deref(), Some("10.0.0.6/24"));
    }

    fn balancers(state: &ClusterState, node: &str) -> Vec<String> {
        state.nodes[node]
            .balancers
            .iter()
            .map(|a| format!("{} {}", a.network_id, a.address))
            .collect()
    }

    #[test]
    fn a_node_gets_a_balancer_address_where_its_tasks_are_and_gives_it_back_after() {
        let mut s = state(
            vec![network("n1", "10.0.1.0/24")],
            vec![task("t1", &["n1"])],
        );
        for id in ["a", "b"] {
            s.insert(crate::store::state::test_node(id));
        }
        step(&mut s);
        assert_eq!(address(&s, "t1"), ["10.0.1.2/24"]);
        assert!(balancers(&s, "a").is_empty(), "no node runs the task yet");
        s.tasks.get_mut("t1").unwrap().node_id = Some("a".into());
        step(&mut s);
        assert_eq!(balancers(&s, "a"), ["n1 10.0.1.3/24"]);
        assert!(balancers(&s, "b").is_empty());
        assert!(allocate(&s, "again").is_empty(), "a node keeps its address");
        // A Put of the node (a `node update`) keeps it.
        let node = s.nodes["a"].clone();
        let put = Change::Put {
            object: Object::Node(crate::store::Node {
                balancers: Vec::new(),
                ..node
            }),
            precondition: crate::store::Precondition::None,
        };
        apply(&mut s, vec![put]);
        assert_eq!(balancers(&s, "a"), ["n1 10.0.1.3/24"]);
        // The task ends: the address goes back, and is free for the next one.
        s.tasks.get_mut("t1").unwrap().status.state = Some(TaskState::FAILED);
        step(&mut s);
        assert!(balancers(&s, "a").is_empty());
        assert!(
            !s.addresses_held("n1", None)
                .contains(&"10.0.1.3".parse().unwrap())
        );
    }

    #[test]
    fn the_store_skips_a_balancer_address_taken_meanwhile_and_none_is_given_on_ingress() {
        let mut s = state(vec![network("n1", "10.0.1.0/24")], Vec::new());
        s.insert(crate::store::state::test_node("a"));
        let give = |address: &str, network: &str| Change::NodeBalancer {
            node_id: "a".into(),
            network_id: network.into(),
            address: Some(address.parse().unwrap()),
        };
        let mut held = task("t2", &[]);
        held.status.state = Some(TaskState::PENDING);
        held.networks = vec![TaskNetwork {
            network_id: "n1".into(),
            address: "10.0.1.2/24".parse().unwrap(),
            aliases: Vec::new(),
        }];
        s.insert(Object::Task(held));
        apply(&mut s, vec![give("10.0.1.2/24", "n1")]);
        assert!(balancers(&s, "a").is_empty(), "held by a task");
        apply(
            &mut s,
            vec![give("10.0.1.9/24", "n1"), give("10.0.1.10/24", "n1")],
        );
        assert_eq!(balancers(&s, "a"), ["n1 10.0.1.9/24"], "one per network");
        let mut ingress = network("ing", "10.0.0.0/24");
        ingress.spec.ingress = Some(true);
        s.insert(Object::Network(ingress));
        apply(&mut s, vec![give("10.0.0.9/24", "ing")]);
        assert_eq!(balancers(&s, "a").len(), 1, "none on ingress");
    }
}
