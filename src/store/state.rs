//! The replicated state: every cluster object, and the one rule that changes it.
//!
//! Applying is pure and deterministic (no clocks, no randomness), so every manager that applies
//! the same log holds the same state. The Raft state machine persists what this computes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use bollard::models::{TaskState, TaskStatus};
use serde::{Deserialize, Serialize};

use super::objects::{Cluster, Kind, Network, Node, Object, ObjectKey, Service, Task, TaskNetwork};

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
            }
        }
        Ok(())
    }

    /// The addresses live tasks (not ended) hold on the network `network_id`, but for the task
    /// `except`.
    pub fn addresses_held(&self, network_id: &str, except: Option<&str>) -> BTreeSet<Ipv4Addr> {
        self.tasks
            .values()
            .filter(|t| !t.is_terminal() && Some(t.id.as_str()) != except)
            .flat_map(|t| &t.networks)
            .filter(|n| n.network_id == network_id)
            .map(|n| n.address.ip())
            .collect()
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
            let ip = attachment.address.ip();
            seen.insert(&attachment.network_id)
                && attachment.address.prefix() == network.subnet.prefix()
                && network.is_host_address(ip)
                && !self
                    .addresses_held(&attachment.network_id, Some(task_id))
                    .contains(&ip)
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
    ports
        .into_iter()
        .flatten()
        .any(|p| p.publish_mode != Some(bollard::models::EndpointPortConfigPublishModeEnum::HOST))
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
    })
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
        let mut service = Service {
            id: "s1".into(),
            meta: Default::default(),
            spec: bollard::models::ServiceSpec {
                name: Some("web".into()),
                task_template: Some(bollard::models::TaskSpec {
                    networks: Some(vec![bollard::models::NetworkAttachmentConfig {
                        target: Some("n1".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            previous_spec: None,
            generation: 1,
            update_status: None,
        };
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
        let mut task = Task {
            id: "t1".into(),
            meta: Default::default(),
            service_id: "s1".into(),
            slot: 1,
            node_id: None,
            generation: 1,
            spec: Default::default(),
            desired_state: TaskState::RUNNING,
            status: Default::default(),
            networks: vec![TaskNetwork {
                network_id: "n1".into(),
                address: "10.0.1.2/24".parse().unwrap(),
                aliases: Vec::new(),
            }],
        };
        state.insert(Object::Task(task.clone()));
        let err = state.apply(&delete, 3).unwrap_err();
        assert!(err.to_string().contains("in use by task t1"), "{err}");
        task.status.state = Some(TaskState::SHUTDOWN);
        state.insert(Object::Task(task));
        state.apply(&delete, 4).unwrap();
        assert!(state.networks.is_empty());
    }
}
