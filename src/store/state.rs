//! The replicated state: every cluster object, and the one rule that changes it.
//!
//! Applying is pure and deterministic (no clocks, no randomness), so every manager that applies
//! the same log holds the same state. The Raft state machine persists what this computes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    TaskState, TaskStatus,
};
use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::objects::{
    Cluster, Kind, Network, NetworkAddress, Node, Object, ObjectKey, Service, Task, TaskNetwork,
};

/// One write in a proposal. (Puts are much larger than deletes; proposals are few, so the
/// size difference costs nothing worth a box.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// Create or replace an object, if the precondition holds.
    Put {
        /// The new object; its `meta.version` is overwritten with the applying log index.
        object: Object,
        /// What must be true of the stored object beforehand.
        precondition: Precondition,
    },
    /// Remove an object; removing an absent object is not an error.
    Delete {
        /// What to remove.
        key: ObjectKey,
    },
    /// Moves a task's observed state forward (never back). Several components write a task's
    /// fields concurrently, so these field changes never conflict: one that does not apply
    /// (unknown task, backward move) is skipped.
    TaskStatus {
        /// The task.
        task_id: String,
        /// Its new status; `timestamp` also becomes the task's `updated_at`.
        status: TaskStatus,
    },
    /// Moves a task's desired state forward (running to shutdown, say).
    TaskDesired {
        /// The task.
        task_id: String,
        /// The new desired state.
        desired: TaskState,
        /// When the change was decided (RFC 3339).
        at: String,
    },
    /// The allocator's step: gives a new task its overlay addresses and makes it pending. It
    /// applies only to a task that is still new, and only if every network exists, every address
    /// lies in its network's subnet and no other live task holds it; otherwise it is skipped and
    /// the allocator decides again.
    TaskAllocate {
        /// The task.
        task_id: String,
        /// One address per network the task attaches to.
        networks: Vec<TaskNetwork>,
        /// The task's new status (pending).
        status: TaskStatus,
    },
    /// Puts a pending task on a node: one on none yet, or the one it was made for (a global
    /// service's task). A task that is not pending is left alone.
    TaskAssign {
        /// The task.
        task_id: String,
        /// The chosen node.
        node_id: String,
        /// The task's new status (assigned).
        status: TaskStatus,
    },
    /// The allocator's step for a node: gives it its address on the ingress network. It applies
    /// only to a node that has none on the current ingress network, and only if the address is
    /// a free host address of that network; otherwise it is skipped and the allocator decides
    /// again. (The node's version does not move: the address is no change the user made or
    /// sees, and a `node update` read just before must still apply.)
    NodeIngress {
        /// The node.
        node_id: String,
        /// Its address on the ingress network.
        address: NetworkAddress,
    },
    /// The allocator's step for a node's balancer address on an overlay other than ingress:
    /// `Some` gives one to a node that has none there, if it is a free host address of the
    /// network (else it is skipped, as `NodeIngress`); `None` takes it back. The node's version
    /// does not move.
    NodeBalancer {
        /// The node.
        node_id: String,
        /// The network.
        network_id: String,
        /// The address to give, or `None` to release the node's address there.
        address: Option<Ipv4Network>,
    },
}

/// The order of task states: a task only ever moves to a higher rank. The terminal states share
/// the top rank, so a task that ended stays as it ended.
pub fn rank(state: TaskState) -> u8 {
    match state {
        TaskState::NEW => 0,
        TaskState::ALLOCATED => 1,
        TaskState::PENDING => 2,
        TaskState::ASSIGNED => 3,
        TaskState::ACCEPTED => 4,
        TaskState::PREPARING => 5,
        TaskState::READY => 6,
        TaskState::STARTING => 7,
        TaskState::RUNNING => 8,
        TaskState::COMPLETE
        | TaskState::SHUTDOWN
        | TaskState::FAILED
        | TaskState::REJECTED
        | TaskState::REMOVE
        | TaskState::ORPHANED => 9,
    }
}

/// Optimistic concurrency for [`Change::Put`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precondition {
    /// Write whatever is stored.
    None,
    /// The object must not exist yet (create).
    Absent,
    /// The object must exist at exactly this version (update of what the writer read).
    Version(u64),
}

/// An atomic batch of changes: all apply or none does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The changes, applied in order.
    pub changes: Vec<Change>,
}

impl Proposal {
    /// Creates `object`, which must not exist yet.
    pub fn create(object: Object) -> Self {
        Proposal {
            changes: vec![Change::Put {
                object,
                precondition: Precondition::Absent,
            }],
        }
    }

    /// Removes the object at `key`, if it exists.
    pub fn delete(key: ObjectKey) -> Self {
        Proposal {
            changes: vec![Change::Delete { key }],
        }
    }

    /// Replaces `object`, which must still be at `version` (the version the writer read).
    pub fn update(object: Object, version: u64) -> Self {
        Proposal {
            changes: vec![Change::Put {
                object,
                precondition: Precondition::Version(version),
            }],
        }
    }
}

/// Why a proposal was refused. Refusal is a normal outcome, replicated like any other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Conflict {
    /// A create found the object already there.
    #[error("{0} already exists")]
    Exists(ObjectKey),
    /// An update found no object.
    #[error("{0} not found")]
    Missing(ObjectKey),
    /// Another service already has this name.
    #[error("name conflicts with an existing object: service {0} already exists")]
    NameInUse(String),
    /// Another network already has this name.
    #[error("network with name {0} already exists")]
    NetworkNameInUse(String),
    /// A network's subnet overlaps another network's.
    #[error(
        "rpc error: code = InvalidArgument desc = invalid pool request: Pool overlaps with other one on this address space ({0})"
    )]
    PoolOverlap(String),
    /// A network still in use was to be removed; the message says by what.
    #[error("rpc error: code = FailedPrecondition desc = {0}")]
    NetworkInUse(String),
    /// A network's VXLAN identifier is another network's.
    #[error("rpc error: code = Internal desc = VXLAN network identifier {0} is already in use")]
    VniInUse(u32),
    /// A published port is another service's (swarmkit's words).
    #[error(
        "rpc error: code = InvalidArgument desc = port '{port}' is already in use by service '{service_name}' ({service_id}) as {}",
        if *host_published { "a host-published port" } else { "an ingress port" }
    )]
    PortInUse {
        /// The published port.
        port: i64,
        /// The service that holds it.
        service_name: String,
        /// Its ID.
        service_id: String,
        /// Whether that service publishes it in host mode (else through the routing mesh).
        host_published: bool,
    },
    /// A service's virtual IP is held by something else, or is no host address of its network.
    #[error(
        "rpc error: code = Internal desc = address {address} is not available on network {network}"
    )]
    AddressUnavailable {
        /// The address.
        address: Ipv4Network,
        /// The network's name (its ID if it does not exist).
        network: String,
    },
    /// An update was based on an old read.
    #[error("update out of sequence: {key} is at version {actual}, not {expected}")]
    Stale {
        /// The object.
        key: ObjectKey,
        /// The version the writer read.
        expected: u64,
        /// The version stored now.
        actual: u64,
    },
}

/// Every cluster object, by kind and ID.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The swarm (at most one).
    pub clusters: BTreeMap<String, Cluster>,
    /// The nodes.
    pub nodes: BTreeMap<String, Node>,
    /// The services.
    pub services: BTreeMap<String, Service>,
    /// The tasks.
    pub tasks: BTreeMap<String, Task>,
    /// The overlay networks.
    #[serde(default)]
    pub networks: BTreeMap<String, Network>,
}

impl ClusterState {
    /// The swarm, once initialised.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.clusters.values().next()
    }

    /// Applies `proposal` at log `index`, or changes nothing and says why not.
    pub fn apply(&mut self, proposal: &Proposal, index: u64) -> Result<(), Conflict> {
        for change in &proposal.changes {
            self.check(change)?;
        }
        for change in &proposal.changes {
            match change {
                Change::Put { object, .. } => {
                    let mut object = object.clone();
                    object.meta_mut().version = index;
                    if let Object::Node(node) = &mut object {
                        if let Some(stored) = self.nodes.get(&node.id) {
                            node.ingress = stored.ingress.clone();
                            node.balancers = stored.balancers.clone();
                        }
                    }
                    self.insert(object);
                }
                Change::Delete { key } => self.remove(key),
                Change::TaskStatus { task_id, status } => {
                    if let Some(task) = self.tasks.get_mut(task_id) {
                        let new = rank(status.state.unwrap_or(TaskState::NEW));
                        // Forward only; news about the same state (a scheduling error, say) is
                        // welcome until the task has ended.
                        if new > rank(task.state())
                            || (new == rank(task.state()) && !task.is_terminal())
                        {
                            task.meta.updated_at = status.timestamp.clone().unwrap_or_default();
                            task.status = status.clone();
                            task.meta.version = index;
                        }
                    }
                }
                Change::TaskDesired {
                    task_id,
                    desired,
                    at,
                } => {
                    if let Some(task) = self.tasks.get_mut(task_id) {
                        if rank(*desired) > rank(task.desired_state) {
                            task.desired_state = *desired;
                            task.meta.updated_at = at.clone();
                            task.meta.version = index;
                        }
                    }
                }
                Change::TaskAllocate {
                    task_id,
                    networks,
                    status,
                } => {
                    if self.may_allocate(task_id, networks) {
                        if let Some(task) = self.tasks.get_mut(task_id) {
                            task.networks = networks.clone();
                            task.meta.updated_at = status.timestamp.clone().unwrap_or_default();
                            task.status = status.clone();
                            task.meta.version = index;
                        }
                    }
                }
                Change::TaskAssign {
                    task_id,
                    node_id,
                    status,
                } => {
                    if let Some(task) = self.tasks.get_mut(task_id) {
                        // Only an allocated (pending) task may go to a node.
                        let node_fits = task.node_id.as_ref().is_none_or(|n| n == node_id);
                        if node_fits && task.state() == TaskState::PENDING {
                            task.node_id = Some(node_id.clone());
                            task.meta.updated_at = status.timestamp.clone().unwrap_or_default();
                            task.status = status.clone();
                            task.meta.version = index;
                        }
                    }
                }
                Change::NodeIngress { node_id, address } => {
                    if self.may_give_ingress(node_id, address) {
                        if let Some(node) = self.nodes.get_mut(node_id) {
                            node.ingress = Some(address.clone());
                        }
                    }
                }
                Change::NodeBalancer {
                    node_id,
                    network_id,
                    address,
                } => self.set_node_balancer(node_id, network_id, *address),
            }
        }
        Ok(())
    }

    /// The addresses held on the network `network_id` by live tasks (not ended), by services
    /// (their virtual IPs) and by nodes (their ingress addresses), but for the task, service or
    /// node with the ID `except`. No address allocator may hand out one of these.
    pub fn addresses_held(&self, network_id: &str, except: Option<&str>) -> BTreeSet<Ipv4Addr> {
        let others = |id: &str| Some(id) != except;
        let tasks = self
            .tasks
            .values()
            .filter(|t| !t.is_terminal() && others(&t.id))
            .flat_map(|t| &t.networks)
            .filter(|n| n.network_id == network_id)
            .map(|n| n.address.ip());
        let services = self
            .services
            .values()
            .filter(|s| others(&s.id))
            .flat_map(|s| &s.endpoint.virtual_ips)
            .filter(|v| v.network_id == network_id)
            .map(|v| v.address.ip());
        let nodes = self
            .nodes
            .values()
            .filter(|n| others(&n.id))
            .flat_map(|n| n.ingress.iter().chain(&n.balancers))
            .filter(|a| a.network_id == network_id)
            .map(|a| a.address.ip());
        tasks.chain(services).chain(nodes).collect()
    }

    /// The swarm's routing-mesh network, if it has one.
    pub fn ingress_network(&self) -> Option<&Network> {
        self.networks.values().find(|n| n.is_ingress())
    }

    /// The ingress address of `node`, if it has one on the current ingress network.
    pub fn node_ingress<'a>(&self, node: &'a Node) -> Option<&'a NetworkAddress> {
        let ingress = self.ingress_network()?;
        node.ingress.as_ref().filter(|a| a.network_id == ingress.id)
    }

    /// Applies [`Change::NodeBalancer`]: gives `address` on `network_id` to the node, if the
    /// node has none there and it is a free host address of that network (not ingress), or
    /// takes the node's address there back.
    fn set_node_balancer(&mut self, node_id: &str, network_id: &str, address: Option<Ipv4Network>) {
        let free = address.filter(|&a| {
            let network = self.networks.get(network_id).filter(|n| !n.is_ingress());
            network.is_some_and(|n| self.address_is_free(n, a, node_id))
        });
        let Some(node) = self.nodes.get_mut(node_id) else {
            return;
        };
        let held = node
            .balancers
            .iter()
            .position(|a| a.network_id == network_id);
        match (address, held) {
            (None, Some(index)) => {
                node.balancers.remove(index);
            }
            (Some(_), None) => {
                if let Some(address) = free {
                    node.balancers.push(NetworkAddress {
                        network_id: network_id.to_string(),
                        address,
                    });
                }
            }
            _ => {}
        }
    }

    /// Whether [`Change::NodeIngress`] may give `address` to the node `node_id`.
    fn may_give_ingress(&self, node_id: &str, address: &NetworkAddress) -> bool {
        let Some(node) = self.nodes.get(node_id) else {
            return false;
        };
        let Some(network) = self.ingress_network() else {
            return false;
        };
        self.node_ingress(node).is_none()
            && address.network_id == network.id
            && self.address_is_free(network, address.address, node_id)
    }

    /// Whether `address` is a host address of `network`, with its prefix length, that nothing
    /// but `holder` holds.
    fn address_is_free(&self, network: &Network, address: Ipv4Network, holder: &str) -> bool {
        address.prefix() == network.subnet.prefix()
            && network.is_host_address(address.ip())
            && !self
                .addresses_held(&network.id, Some(holder))
                .contains(&address.ip())
    }

    /// The network `reference` names: its ID, else its name.
    pub fn network(&self, reference: &str) -> Option<&Network> {
        self.networks
            .get(reference)
            .or_else(|| self.networks.values().find(|n| n.name() == reference))
    }

    /// Whether [`Change::TaskAllocate`] may give `networks` to the task `task_id`.
    fn may_allocate(&self, task_id: &str, networks: &[TaskNetwork]) -> bool {
        let Some(task) = self.tasks.get(task_id) else {
            return false;
        };
        if task.state() != TaskState::NEW || task.desired_state != TaskState::RUNNING {
            return false;
        }
        let mut seen = BTreeSet::new();
        networks.iter().all(|attachment| {
            let Some(network) = self.networks.get(&attachment.network_id) else {
                return false;
            };
            seen.insert(&attachment.network_id)
                && self.address_is_free(network, attachment.address, task_id)
        })
    }

    /// The stored version of `key`, if the object exists.
    pub fn version_of(&self, key: &ObjectKey) -> Option<u64> {
        match key.kind {
            Kind::Cluster => self.clusters.get(&key.id).map(|c| c.meta.version),
            Kind::Node => self.nodes.get(&key.id).map(|n| n.meta.version),
            Kind::Service => self.services.get(&key.id).map(|s| s.meta.version),
            Kind::Task => self.tasks.get(&key.id).map(|t| t.meta.version),
            Kind::Network => self.networks.get(&key.id).map(|n| n.meta.version),
        }
    }

    /// The stored object at `key`.
    pub fn object(&self, key: &ObjectKey) -> Option<Object> {
        match key.kind {
            Kind::Cluster => self.clusters.get(&key.id).cloned().map(Object::Cluster),
            Kind::Node => self.nodes.get(&key.id).cloned().map(Object::Node),
            Kind::Service => self.services.get(&key.id).cloned().map(Object::Service),
            Kind::Task => self.tasks.get(&key.id).cloned().map(Object::Task),
            Kind::Network => self.networks.get(&key.id).cloned().map(Object::Network),
        }
    }

    /// Every object, for persisting a snapshot or rebuilding from one.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        let clusters = self.clusters.values().cloned().map(Object::Cluster);
        clusters
            .chain(self.nodes.values().cloned().map(Object::Node))
            .chain(self.services.values().cloned().map(Object::Service))
            .chain(self.tasks.values().cloned().map(Object::Task))
            .chain(self.networks.values().cloned().map(Object::Network))
    }

    /// Stores `object`, replacing any object with its key.
    pub fn insert(&mut self, object: Object) {
        match object {
            Object::Cluster(c) => {
                self.clusters.insert(c.id.clone(), c);
            }
            Object::Node(n) => {
                self.nodes.insert(n.id.clone(), n);
            }
            Object::Service(s) => {
                self.services.insert(s.id.clone(), s);
            }
            Object::Task(t) => {
                self.tasks.insert(t.id.clone(), t);
            }
            Object::Network(n) => {
                self.networks.insert(n.id.clone(), n);
            }
        }
    }

    fn remove(&mut self, key: &ObjectKey) {
        match key.kind {
            Kind::Cluster => self.clusters.remove(&key.id).map(drop),
            Kind::Node => self.nodes.remove(&key.id).map(drop),
            Kind::Service => self.services.remove(&key.id).map(drop),
            Kind::Task => self.tasks.remove(&key.id).map(drop),
            Kind::Network => self.networks.remove(&key.id).map(drop),
        };
    }

    fn check(&self, change: &Change) -> Result<(), Conflict> {
        if let Change::Delete { key } = change {
            if key.kind == Kind::Network {
                return self.check_network_removal(&key.id);
            }
        }
        let Change::Put {
            object,
            precondition,
        } = change
        else {
            return Ok(());
        };
        let key = object.key();
        if let Object::Service(service) = object {
            let name = service.spec.name.as_deref().unwrap_or_default();
            if self
                .services
                .values()
                .any(|other| other.id != service.id && other.spec.name.as_deref() == Some(name))
            {
                return Err(Conflict::NameInUse(name.to_string()));
            }
            // The API checked these against what it read; a concurrent write may have taken
            // them since.
            if let Some(conflict) = self.port_conflict(&service.id, &service.endpoint.ports) {
                return Err(conflict);
            }
            self.check_virtual_ips(service)?;
        }
        if let Object::Network(network) = object {
            self.check_network(network)?;
        }
        match (precondition, self.version_of(&key)) {
            (Precondition::None, _) | (Precondition::Absent, None) => Ok(()),
            (Precondition::Absent, Some(_)) => Err(Conflict::Exists(key)),
            (Precondition::Version(_), None) => Err(Conflict::Missing(key)),
            (Precondition::Version(expected), Some(actual)) if *expected == actual => Ok(()),
            (Precondition::Version(expected), Some(actual)) => Err(Conflict::Stale {
                key,
                expected: *expected,
                actual,
            }),
        }
    }
}

impl ClusterState {
    /// What uses the network `id`, if anything, in docker's words: a service attached to it
    /// (for the ingress network, one publishing ports through the routing mesh), or a task
    /// still holding an address on it.
    pub fn network_user(&self, id: &str) -> Option<String> {
        let network = self.networks.get(id)?;
        let service_name = |s: &Service| s.spec.name.clone().unwrap_or_else(|| s.id.clone());
        if network.is_ingress() {
            let publisher = self.services.values().find(|s| publishes_through_mesh(s));
            return publisher.map(|s| {
                format!(
                    "ingress network cannot be removed because service {} depends on it",
                    service_name(s)
                )
            });
        }
        let attached = |s: &Service| {
            let template = s.spec.task_template.as_ref();
            template
                .and_then(|t| t.networks.as_ref())
                .into_iter()
                .chain(s.spec.networks.as_ref())
                .flatten()
                .any(|a| {
                    a.target.as_deref() == Some(id) || a.target.as_deref() == Some(network.name())
                })
        };
        if let Some(service) = self.services.values().find(|s| attached(s)) {
            return Some(format!(
                "network {} is in use by service {}",
                network.name(),
                service_name(service)
            ));
        }
        let task = self
            .tasks
            .values()
            .find(|t| !t.is_terminal() && t.networks.iter().any(|n| n.network_id == id))?;
        Some(format!(
            "network {} is in use by task {}",
            network.name(),
            task.id
        ))
    }

    /// The networks `task` has addresses on, each with its attachment: what docker shows as the
    /// task's `NetworksAttachments`, and what the data plane needs to wire it.
    pub fn attachments<'a>(&'a self, task: &'a Task) -> Vec<(&'a Network, &'a TaskNetwork)> {
        task.networks
            .iter()
            .filter_map(|a| Some((self.networks.get(&a.network_id)?, a)))
            .collect()
    }

    fn check_network_removal(&self, id: &str) -> Result<(), Conflict> {
        match self.network_user(id) {
            Some(user) => Err(Conflict::NetworkInUse(user)),
            None => Ok(()),
        }
    }

    /// The first of `ports` that a service other than `service_id` holds, as swarmkit's rule
    /// has it: an ingress port conflicts with any other service's port of the same protocol
    /// and number; a host-published port only with another's ingress port (host ports of
    /// several services coexist: the scheduler keeps their tasks on different nodes). A port
    /// without a number holds nothing.
    pub fn port_conflict(
        &self,
        service_id: &str,
        ports: &[EndpointPortConfig],
    ) -> Option<Conflict> {
        let wanted: Vec<(PortId, bool)> = ports
            .iter()
            .filter_map(|p| Some((port_id(p)?, is_ingress_port(p))))
            .collect();
        if wanted.is_empty() {
            return None;
        }
        for (other, port) in self.ports_held(service_id) {
            let Some(id) = port_id(port) else { continue };
            let held_ingress = is_ingress_port(port);
            let clash = wanted
                .iter()
                .any(|(w, wanted_ingress)| *w == id && (held_ingress || *wanted_ingress));
            if clash {
                return Some(Conflict::PortInUse {
                    port: i64::from(id.1),
                    service_name: other.spec.name.clone().unwrap_or_default(),
                    service_id: other.id.clone(),
                    host_published: !held_ingress,
                });
            }
        }
        None
    }

    /// The ports every service but `except` publishes, each with its service: those of its
    /// endpoint, and those of its spec (all a service stored before endpoints were resolved
    /// has).
    pub fn ports_held<'a>(
        &'a self,
        except: &'a str,
    ) -> impl Iterator<Item = (&'a Service, &'a EndpointPortConfig)> + 'a {
        self.services
            .values()
            .filter(move |s| s.id != except)
            .flat_map(|s| {
                let spec_ports = s.spec.endpoint_spec.as_ref().and_then(|e| e.ports.as_ref());
                s.endpoint
                    .ports
                    .iter()
                    .chain(spec_ports.into_iter().flatten())
                    .map(move |p| (s, p))
            })
    }

    /// A service's virtual IPs must be free host addresses of distinct, existing networks.
    fn check_virtual_ips(&self, service: &Service) -> Result<(), Conflict> {
        let mut seen = BTreeSet::new();
        for vip in &service.endpoint.virtual_ips {
            let network = self.networks.get(&vip.network_id);
            let free = network.is_some_and(|n| {
                seen.insert(&n.id) && self.address_is_free(n, vip.address, &service.id)
            });
            if !free {
                return Err(Conflict::AddressUnavailable {
                    address: vip.address,
                    network: network.map_or(vip.network_id.clone(), |n| n.name().to_string()),
                });
            }
        }
        Ok(())
    }

    /// A network must not share its name, subnet or VNI with another.
    fn check_network(&self, network: &Network) -> Result<(), Conflict> {
        for other in self.networks.values().filter(|o| o.id != network.id) {
            if other.name() == network.name() {
                return Err(Conflict::NetworkNameInUse(network.name().to_string()));
            }
            if other.subnet.overlaps(network.subnet) {
                return Err(Conflict::PoolOverlap(format!(
                    "{} overlaps {} of network {}",
                    network.subnet,
                    other.subnet,
                    other.name()
                )));
            }
            if other.vni == network.vni {
                return Err(Conflict::VniInUse(network.vni));
            }
        }
        Ok(())
    }
}

/// Whether `service` publishes a port through the routing mesh (ingress mode, docker's
/// default), so that its tasks attach to the ingress network.
pub fn publishes_through_mesh(service: &Service) -> bool {
    let ports = service
        .spec
        .endpoint_spec
        .as_ref()
        .and_then(|e| e.ports.as_ref());
    ports.into_iter().flatten().any(is_ingress_port)
}

/// Whether `port` is published through the routing mesh: ingress mode, docker's default.
pub fn is_ingress_port(port: &EndpointPortConfig) -> bool {
    port.publish_mode != Some(EndpointPortConfigPublishModeEnum::HOST)
}

/// The protocol of `port`: TCP unless it says otherwise, as docker defaults it.
pub fn port_protocol(port: &EndpointPortConfig) -> EndpointPortConfigProtocolEnum {
    match port.protocol {
        None | Some(EndpointPortConfigProtocolEnum::EMPTY) => EndpointPortConfigProtocolEnum::TCP,
        Some(protocol) => protocol,
    }
}

/// A published port's identity: its protocol and number.
pub type PortId = (EndpointPortConfigProtocolEnum, u16);

/// The identity of `port` if it has a published number.
pub fn port_id(port: &EndpointPortConfig) -> Option<PortId> {
    let number = u16::try_from(port.published_port?)
        .ok()
        .filter(|&n| n > 0)?;
    Some((port_protocol(port), number))
}

/// A bare node object for tests.
#[cfg(test)]
pub fn test_node(id: &str) -> Object {
    Object::Node(Node {
        id: id.into(),
        meta: super::objects::Meta::now(),
        spec: Default::default(),
        description: Default::default(),
        status: Default::default(),
        manager: None,
        ingress: None,
        balancers: Vec::new(),
    })
}

/// A service `id` with `spec`, at generation 1, holding no ports or VIPs, for tests.
#[cfg(test)]
pub fn test_service(id: &str, spec: bollard::models::ServiceSpec) -> super::objects::Service {
    super::objects::Service {
        id: id.into(),
        meta: Default::default(),
        spec,
        previous_spec: None,
        generation: 1,
        update_status: None,
        endpoint: Default::default(),
    }
}

/// A task `id` of service `service_id`, wanted running, on no node yet, attached to the
/// networks `on` (network ID and address with prefix), for tests.
#[cfg(test)]
pub fn test_task(id: &str, service_id: &str, on: &[(&str, &str)]) -> Task {
    Task {
        id: id.into(),
        meta: Default::default(),
        service_id: service_id.into(),
        slot: 1,
        node_id: None,
        generation: 1,
        spec: Default::default(),
        desired_state: TaskState::RUNNING,
        status: Default::default(),
        networks: on
            .iter()
            .map(|(network, address)| TaskNetwork {
                network_id: network.to_string(),
                address: address.parse().expect("an address with its prefix length"),
                aliases: Vec::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::test_node as node;
    use super::*;

    fn put(object: Object, precondition: Precondition) -> Proposal {
        Proposal {
            changes: vec![Change::Put {
                object,
                precondition,
            }],
        }
    }

    #[test]
    fn put_sets_version_to_log_index() {
        let mut state = ClusterState::default();
        state
            .apply(&put(node("a"), Precondition::Absent), 7)
            .unwrap();
        assert_eq!(state.nodes["a"].meta.version, 7);
    }

    #[test]
    fn create_of_existing_object_conflicts() {
        let mut state = ClusterState::default();
        state
            .apply(&put(node("a"), Precondition::Absent), 1)
            .unwrap();
        let err = state
            .apply(&put(node("a"), Precondition::Absent), 2)
            .unwrap_err();
        assert!(matches!(err, Conflict::Exists(_)));
        assert_eq!(state.nodes["a"].meta.version, 1);
    }

    #[test]
    fn stale_update_is_refused_and_current_one_applies() {
        let mut state = ClusterState::default();
        state
            .apply(&put(node("a"), Precondition::Absent), 3)
            .unwrap();
        let err = state
            .apply(&put(node("a"), Precondition::Version(2)), 4)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "update out of sequence: Node a is at version 3, not 2"
        );
        state
            .apply(&put(node("a"), Precondition::Version(3)), 5)
            .unwrap();
        assert_eq!(state.nodes["a"].meta.version, 5);
    }

    #[test]
    fn update_of_missing_object_conflicts() {
        let mut state = ClusterState::default();
        let err = state
            .apply(&put(node("a"), Precondition::Version(1)), 2)
            .unwrap_err();
        assert!(matches!(err, Conflict::Missing(_)));
    }

    #[test]
    fn failed_batch_changes_nothing() {
        let mut state = ClusterState::default();
        state
            .apply(&put(node("a"), Precondition::Absent), 1)
            .unwrap();
        let batch = Proposal {
            changes: vec![
                Change::Put {
                    object: node("b"),
                    precondition: Precondition::Absent,
                },
                Change::Put {
                    object: node("a"),
                    precondition: Precondition::Absent,
                },
            ],
        };
        assert!(state.apply(&batch, 2).is_err());
        assert!(!state.nodes.contains_key("b"));
    }

    #[test]
    fn delete_removes_and_tolerates_absence() {
        let mut state = ClusterState::default();
        state
            .apply(&put(node("a"), Precondition::Absent), 1)
            .unwrap();
        let key = ObjectKey {
            kind: Kind::Node,
            id: "a".into(),
        };
        let delete = Proposal::delete(key);
        state.apply(&delete, 2).unwrap();
        state.apply(&delete, 3).unwrap();
        assert!(state.nodes.is_empty());
    }

    fn network(id: &str, name: &str, subnet: &str, vni: u32) -> Object {
        let subnet: ipnetwork::Ipv4Network = subnet.parse().unwrap();
        Object::Network(Network {
            id: id.into(),
            meta: Default::default(),
            spec: bollard::models::NetworkCreateRequest {
                name: name.into(),
                ..Default::default()
            },
            gateway: std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1),
            subnet,
            vni,
            mtu: 1450,
        })
    }

    #[test]
    fn networks_may_not_share_a_name_a_subnet_or_a_vni() {
        let mut state = ClusterState::default();
        let create = |o| put(o, Precondition::Absent);
        state
            .apply(&create(network("a", "web", "10.0.1.0/24", 4097)), 1)
            .unwrap();
        let err = state
            .apply(&create(network("b", "web", "10.0.2.0/24", 4098)), 2)
            .unwrap_err();
        assert_eq!(err.to_string(), "network with name web already exists");
        let err = state
            .apply(&create(network("b", "db", "10.0.0.0/16", 4098)), 2)
            .unwrap_err();
        assert!(matches!(err, Conflict::PoolOverlap(_)), "{err}");
        let err = state
            .apply(&create(network("b", "db", "10.0.2.0/24", 4097)), 2)
            .unwrap_err();
        assert_eq!(err, Conflict::VniInUse(4097));
        state
            .apply(&create(network("b", "db", "10.0.2.0/24", 4098)), 2)
            .unwrap();
        // A network's own update is no conflict with itself.
        state
            .apply(
                &put(
                    network("b", "db", "10.0.2.0/24", 4098),
                    Precondition::Version(2),
                ),
                3,
            )
            .unwrap();
    }

    #[test]
    fn a_network_in_use_cannot_be_removed() {
        let mut state = ClusterState::default();
        state.insert(network("n1", "mynet", "10.0.1.0/24", 4097));
        let spec = bollard::models::ServiceSpec {
            name: Some("web".into()),
            task_template: Some(bollard::models::TaskSpec {
                networks: Some(vec![bollard::models::NetworkAttachmentConfig {
                    target: Some("n1".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut service = test_service("s1", spec);
        state.insert(Object::Service(service.clone()));
        let delete = Proposal::delete(ObjectKey {
            kind: Kind::Network,
            id: "n1".into(),
        });
        let err = state.apply(&delete, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rpc error: code = FailedPrecondition desc = network mynet is in use by service web"
        );
        // Detached from the service, it is still held by a live task's address.
        service.spec.task_template = None;
        state.insert(Object::Service(service));
        let mut task = test_task("t1", "s1", &[("n1", "10.0.1.2/24")]);
        state.insert(Object::Task(task.clone()));
        let err = state.apply(&delete, 3).unwrap_err();
        assert!(err.to_string().contains("in use by task t1"), "{err}");
        task.status.state = Some(TaskState::SHUTDOWN);
        state.insert(Object::Task(task));
        state.apply(&delete, 4).unwrap();
        assert!(state.networks.is_empty());
    }

    fn service_with(
        id: &str,
        name: &str,
        ports: Vec<EndpointPortConfig>,
        virtual_ips: Vec<NetworkAddress>,
    ) -> Object {
        Object::Service(Service {
            id: id.into(),
            meta: Default::default(),
            spec: bollard::models::ServiceSpec {
                name: Some(name.into()),
                ..Default::default()
            },
            previous_spec: None,
            generation: 1,
            update_status: None,
            endpoint: super::super::objects::ServiceEndpoint { ports, virtual_ips },
        })
    }

    fn ingress_port(published: i64) -> EndpointPortConfig {
        EndpointPortConfig {
            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(80),
            published_port: Some(published),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::INGRESS),
            ..Default::default()
        }
    }

    fn on(network: &str, address: &str) -> NetworkAddress {
        NetworkAddress {
            network_id: network.into(),
            address: address.parse().unwrap(),
        }
    }

    #[test]
    fn two_services_cannot_both_take_a_port_even_when_written_concurrently() {
        let mut state = ClusterState::default();
        // Both creates were decided on a state without the other; the store has the last word.
        let create = |o| put(o, Precondition::Absent);
        state
            .apply(
                &create(service_with("s1", "web", vec![ingress_port(8080)], vec![])),
                1,
            )
            .unwrap();
        let err = state
            .apply(
                &create(service_with("s2", "api", vec![ingress_port(8080)], vec![])),
                2,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'web' (s1) as an ingress port"
        );
        // Its own port is no conflict when the service is written again (the orchestrator).
        state
            .apply(
                &put(
                    service_with("s1", "web", vec![ingress_port(8080)], vec![]),
                    Precondition::Version(1),
                ),
                3,
            )
            .unwrap();
        // Removed, it holds the port no more.
        let delete = Proposal::delete(ObjectKey {
            kind: Kind::Service,
            id: "s1".into(),
        });
        state.apply(&delete, 4).unwrap();
        state
            .apply(
                &create(service_with("s2", "api", vec![ingress_port(8080)], vec![])),
                5,
            )
            .unwrap();
    }

    #[test]
    fn a_virtual_ip_must_be_a_free_host_address_of_its_network() {
        let mut state = ClusterState::default();
        state.insert(network("n1", "mynet", "10.0.1.0/24", 4097));
        let mut node = match test_node("a") {
            Object::Node(n) => n,
            _ => unreachable!(),
        };
        node.ingress = Some(on("n1", "10.0.1.2/24"));
        state.insert(Object::Node(node));
        let create = |o| put(o, Precondition::Absent);
        for (taken, network) in [
            ("10.0.1.2/24", "mynet"), // the node's
            ("10.0.1.1/24", "mynet"), // the gateway
            ("10.0.2.5/24", "mynet"), // outside the subnet
            ("10.0.1.5/24", "zz"),    // no such network
        ] {
            let vip = on(if network == "zz" { "zz" } else { "n1" }, taken);
            let err = state
                .apply(&create(service_with("s1", "web", vec![], vec![vip])), 2)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "rpc error: code = Internal desc = address {taken} is not available on network {network}"
                )
            );
        }
        state
            .apply(
                &create(service_with(
                    "s1",
                    "web",
                    vec![],
                    vec![on("n1", "10.0.1.3/24")],
                )),
                2,
            )
            .unwrap();
        let err = state
            .apply(
                &create(service_with(
                    "s2",
                    "api",
                    vec![],
                    vec![on("n1", "10.0.1.3/24")],
                )),
                3,
            )
            .unwrap_err();
        assert!(matches!(err, Conflict::AddressUnavailable { .. }), "{err}");
        let held = state.addresses_held("n1", None);
        assert!(
            held.contains(&"10.0.1.2".parse().unwrap())
                && held.contains(&"10.0.1.3".parse().unwrap())
        );
        assert!(
            !state
                .addresses_held("n1", Some("s1"))
                .contains(&"10.0.1.3".parse().unwrap())
        );
    }

    #[test]
    fn a_node_keeps_its_ingress_address_until_it_is_removed() {
        let mut state = ClusterState::default();
        let mut ingress = match network("ing", "ingress", "10.0.0.0/24", 4096) {
            Object::Network(n) => n,
            _ => unreachable!(),
        };
        ingress.spec.ingress = Some(true);
        state.insert(Object::Network(ingress));
        state.insert(network("n1", "mynet", "10.0.1.0/24", 4097));
        state
            .apply(&put(node("a"), Precondition::Absent), 1)
            .unwrap();
        state
            .apply(&put(node("b"), Precondition::Absent), 2)
            .unwrap();
        let give = |node: &str, address: &str, network: &str| Proposal {
            changes: vec![Change::NodeIngress {
                node_id: node.into(),
                address: on(network, address),
            }],
        };
        let ingress_of = |state: &ClusterState, id: &str| {
            state.nodes[id]
                .ingress
                .as_ref()
                .map(|a| a.address.to_string())
        };
        state.apply(&give("a", "10.0.0.2/24", "ing"), 3).unwrap();
        assert_eq!(ingress_of(&state, "a").as_deref(), Some("10.0.0.2/24"));
        // The version stays: a `node update` read before still applies.
        assert_eq!(state.nodes["a"].meta.version, 1);
        // Skipped: a second address, one held by another, one off the ingress network.
        state.apply(&give("a", "10.0.0.3/24", "ing"), 4).unwrap();
        state.apply(&give("b", "10.0.0.2/24", "ing"), 5).unwrap();
        state.apply(&give("b", "10.0.1.2/24", "n1"), 6).unwrap();
        state.apply(&give("zz", "10.0.0.9/24", "ing"), 7).unwrap();
        assert_eq!(ingress_of(&state, "a").as_deref(), Some("10.0.0.2/24"));
        assert_eq!(ingress_of(&state, "b"), None);
        assert!(!state.nodes.contains_key("zz"));
        // A writer of the node's other fields (health, `node update`) does not erase it.
        state
            .apply(&put(node("a"), Precondition::Version(1)), 8)
            .unwrap();
        assert_eq!(ingress_of(&state, "a").as_deref(), Some("10.0.0.2/24"));
        // Removed, the node frees it.
        let delete = Proposal::delete(ObjectKey {
            kind: Kind::Node,
            id: "a".into(),
        });
        state.apply(&delete, 9).unwrap();
        state.apply(&give("b", "10.0.0.2/24", "ing"), 10).unwrap();
        assert_eq!(ingress_of(&state, "b").as_deref(), Some("10.0.0.2/24"));
    }
}
