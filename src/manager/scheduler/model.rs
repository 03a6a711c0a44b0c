//! The scheduler's inputs and outputs. The caller converts store objects into these, so the
//! scheduler never sees the store.

use std::collections::BTreeMap;
use std::sync::Arc;

/// CPU and memory, as a node offers them or a task reserves them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in billionths of a CPU.
    pub nano_cpus: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl Resources {
    /// Whether nothing is asked for; swarmkit skips its resource filter for such tasks.
    pub fn is_zero(self) -> bool {
        self.nano_cpus == 0 && self.memory_bytes == 0
    }

    // The arithmetic saturates, so that absurd figures refuse placements rather than panic.

    /// Both amounts of `self` and `other` added up.
    pub(super) fn plus(self, other: Resources) -> Resources {
        Resources {
            nano_cpus: self.nano_cpus.saturating_add(other.nano_cpus),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    /// What is left of `self` once `used` is taken.
    pub(super) fn minus(self, used: Resources) -> Resources {
        Resources {
            nano_cpus: self.nano_cpus.saturating_sub(used.nano_cpus),
            memory_bytes: self.memory_bytes.saturating_sub(used.memory_bytes),
        }
    }

    /// Whether `wanted` fits in `self`, in both amounts.
    pub(super) fn covers(self, wanted: Resources) -> bool {
        wanted.nano_cpus <= self.nano_cpus && wanted.memory_bytes <= self.memory_bytes
    }
}

/// A node's role in the swarm, as `node.role` constraints see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// A Raft member that also runs tasks.
    Manager,
    /// A node that only runs tasks.
    #[default]
    Worker,
}

/// The availability an operator set on a node (`docker node update --availability`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Availability {
    /// Takes new tasks.
    #[default]
    Active,
    /// Keeps its tasks but takes no new ones.
    Pause,
    /// Takes no new tasks; the orchestrator moves its tasks away.
    Drain,
}

/// An operating system and CPU architecture, as a node reports them or an image supports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, ...; empty in a task's platform means any.
    pub os: String,
    /// `x86_64`, `amd64`, `aarch64`, ...; empty in a task's platform means any.
    pub arch: String,
}

/// A node as the scheduler sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node ID; ties between equally loaded nodes go to the smallest.
    pub id: String,
    /// The hostname the node reported.
    pub hostname: String,
    /// The IP address the managers see the node at; `node.ip` constraints test it.
    pub addr: String,
    /// Manager or worker.
    pub role: Role,
    /// The node's OS and architecture.
    pub platform: Platform,
    /// Labels the operator set on the node (`node.labels.*`).
    pub labels: BTreeMap<String, String>,
    /// Labels the node's engine reported (`engine.labels.*`).
    pub engine_labels: BTreeMap<String, String>,
    /// Whether the node's status is ready (it is up and reporting).
    pub ready: bool,
    /// Whether the operator lets the node take new tasks.
    pub availability: Availability,
    /// What the node offers in all; reservations of its tasks are taken from it.
    pub resources: Resources,
}

/// The transport protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A port published in host mode: it is bound on the node itself, so two tasks that publish
/// the same one cannot share a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The port number on the node.
    pub published: u16,
    /// Its protocol: 80/tcp and 80/udp do not conflict.
    pub protocol: Protocol,
}

/// A task that already holds a node: it weighs on spread and holds its reservations and
/// host ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExistingTask {
    /// The node it is assigned to; tasks on nodes the scheduler does not know are ignored.
    pub node_id: String,
    /// Its service.
    pub service_id: String,
    /// What it reserved.
    pub reservations: Resources,
    /// The host-mode ports it publishes.
    pub host_ports: Vec<HostPort>,
}

/// Pending tasks of one service that share a spec, and so are placed together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskGroup {
    /// The service the tasks belong to; spread counts tasks per service.
    pub service_id: String,
    /// The tasks to place, in the order placements are reported.
    pub task_ids: Vec<String>,
    /// Placement constraints in docker's syntax, e.g. `node.labels.zone == east`.
    pub constraints: Vec<String>,
    /// Placement preferences in docker's syntax, e.g. `spread=node.labels.zone`, outermost
    /// first.
    pub preferences: Vec<String>,
    /// The platforms the image supports; empty means any.
    pub platforms: Vec<Platform>,
    /// What each task reserves.
    pub reservations: Resources,
    /// At most this many tasks of the service on one node; 0 means no limit.
    pub max_replicas_per_node: u64,
    /// The host-mode ports each task publishes.
    pub host_ports: Vec<HostPort>,
}

/// A task and the node chosen for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The task.
    pub task_id: String,
    /// The node it goes to, shared between all placements on that node.
    pub node_id: Arc<str>,
}

/// A task no node could take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unplaced {
    /// The task.
    pub task_id: String,
    /// Docker's wording, e.g. `no suitable node (insufficient resources on 3 nodes)`, for the
    /// task status' error.
    pub reason: String,
}

/// What became of one group's tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSchedule {
    /// The placed tasks, in the group's task order.
    pub placements: Vec<Placement>,
    /// The tasks left pending, in the group's task order.
    pub unplaced: Vec<Unplaced>,
}

/// Why a group's placement rules were refused; none of its tasks is placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A constraint does not parse or names an unknown key.
    #[error("invalid constraint: {constraint:?}: {reason}")]
    InvalidConstraint {
        /// The constraint as written.
        constraint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A placement preference does not parse.
    #[error("invalid placement preference: {preference:?}: {reason}")]
    InvalidPreference {
        /// The preference as written.
        preference: String,
        /// What is wrong with it.
        reason: String,
    },
}
