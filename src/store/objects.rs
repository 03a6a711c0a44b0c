//! The cluster objects the store keeps, in the shape the control plane works with.
//!
//! They embed bollard's API models where the API hands a user's spec straight back (a node's
//! spec, the swarm spec), so the JSON docker sees is the JSON that was stored.

use std::net::Ipv4Addr;

use bollard::models::{
    EndpointPortConfig, NetworkCreateRequest, NodeDescription, NodeSpec, NodeSpecRoleEnum,
    NodeStatus, ServiceSpec, ServiceUpdateStatus, SwarmSpec, TaskSpec, TaskState, TaskStatus,
};
use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

/// Bookkeeping every stored object carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Raft log index of the object's last change (docker's `Version.Index`); the state machine
    /// sets it, so it is the same on every manager.
    pub version: u64,
    /// RFC 3339 time of creation, chosen by the proposer (applying must be deterministic).
    pub created_at: String,
    /// RFC 3339 time of the last change, chosen by the proposer.
    pub updated_at: String,
}

impl Meta {
    /// Meta for an object created now.
    pub fn now() -> Self {
        let now = timestamp_now();
        Meta {
            version: 0,
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// Marks the object as changed now; the version is set when the change is applied.
    pub fn touch(&mut self) {
        self.updated_at = timestamp_now();
    }
}

/// The current time in docker's format: RFC 3339, UTC, nanoseconds.
pub fn timestamp_now() -> String {
    timestamp(std::time::SystemTime::now())
}

/// `at` in docker's format: RFC 3339, UTC, nanoseconds.
pub fn timestamp(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(at).to_string()
}

/// The swarm: exactly one per cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Cluster ID (25 base-36 characters), also the O of every node certificate.
    pub id: String,
    /// Version and times.
    pub meta: Meta,
    /// The user-settable part, as `swarm update` changes it.
    pub spec: SwarmSpec,
    /// Root CA certificate and key, kept in the store so that any manager can sign (as swarmkit).
    pub root_ca: RootCaMaterial,
    /// Join token that makes a worker.
    pub worker_token: String,
    /// Join token that makes a manager.
    pub manager_token: String,
    /// Pools overlay subnets are cut from.
    pub default_addr_pool: Vec<String>,
    /// Prefix length of each overlay subnet cut from the pools.
    pub subnet_size: u32,
    /// UDP port of the VXLAN data path.
    pub data_path_port: u16,
}

/// The PEM-encoded root CA certificate and private key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootCaMaterial {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA private key, PEM.
    pub key_pem: String,
}

/// A member of the swarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Node ID (25 base-36 characters), also the CN of its certificate.
    pub id: String,
    /// Version and times.
    pub meta: Meta,
    /// Role, availability, labels: what `node update` changes.
    pub spec: NodeSpec,
    /// What the node reported about itself: hostname, platform, resources.
    pub description: NodeDescription,
    /// Ready or down, and the address the node is reached at.
    pub status: NodeStatus,
    /// Set when the node is a manager: its place in Raft.
    pub manager: Option<ManagerRecord>,
    /// The node's own address on the ingress network (docker's `ingress-sbox` endpoint), the
    /// source of the routing mesh's connections to backends. Only the allocator's
    /// `Change::NodeIngress` sets it: a Put of the node keeps the stored one, so that writers of
    /// a node's other fields (health, `node update`) cannot erase it.
    #[serde(default)]
    pub ingress: Option<NetworkAddress>,
    /// The node's own address on each other overlay it runs tasks on (docker's per-network
    /// load-balancer endpoint): the source of the VIP balancer's connections to backends. Only
    /// the allocator's `Change::NodeBalancer` sets them, and a Put of the node keeps them, as
    /// with `ingress`.
    #[serde(default)]
    pub balancers: Vec<NetworkAddress>,
}

impl Node {
    /// Whether the node's role is manager (what `node promote` and `demote` change).
    pub fn is_manager(&self) -> bool {
        self.spec.role == Some(NodeSpecRoleEnum::MANAGER)
    }
}

/// A manager's Raft identity and control address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManagerRecord {
    /// The manager's Raft member ID; never reused.
    pub raft_id: u64,
    /// `host:port` other nodes reach its control endpoint (2377) at.
    pub addr: String,
    /// Whether the leader heard from it lately (`node ls`: Reachable or Unreachable).
    pub reachable: bool,
}

/// A service: the desired state the orchestrator turns into tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Service ID (25 base-36 characters).
    pub id: String,
    /// Version and times.
    pub meta: Meta,
    /// What the user asked for.
    pub spec: ServiceSpec,
    /// The spec before the last update, for `service rollback`.
    pub previous_spec: Option<ServiceSpec>,
    /// Counts spec changes (updates, rollbacks, `--force`); a task runs the generation it was
    /// made from, so tasks of an older generation are the ones a rolling update replaces.
    pub generation: u64,
    /// Progress of the last rolling update or rollback.
    pub update_status: Option<ServiceUpdateStatus>,
    /// What the service holds: its published ports and virtual IPs (docker's `Endpoint`).
    #[serde(default)]
    pub endpoint: ServiceEndpoint,
}

/// The ports and addresses a service holds, resolved from its spec when it is created or
/// updated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    /// The spec's ports with protocol and publish mode filled in and every ingress port given
    /// a number (docker's `Endpoint.Ports`). An ingress port is held by this service alone.
    pub ports: Vec<EndpointPortConfig>,
    /// One virtual IP per network the service is on, in vip mode (docker's
    /// `Endpoint.VirtualIPs`): the ingress network first when it publishes through the mesh,
    /// then each attached network.
    pub virtual_ips: Vec<NetworkAddress>,
}

/// An address a service or a node holds on an overlay network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAddress {
    /// The network.
    pub network_id: String,
    /// The address, with the network's prefix length (docker shows `10.0.0.3/24`).
    pub address: Ipv4Network,
}

/// One run of a service's container spec on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Task ID (25 base-36 characters).
    pub id: String,
    /// Version and times.
    pub meta: Meta,
    /// The service it belongs to.
    pub service_id: String,
    /// Replica number (1..) of a replicated service; 0 for a global service's tasks.
    pub slot: u64,
    /// The node it is assigned to, once scheduled (from the start for global services).
    pub node_id: Option<String>,
    /// The service generation it runs.
    pub generation: u64,
    /// What to run.
    pub spec: TaskSpec,
    /// What the orchestrator wants: running, or shutdown.
    pub desired_state: TaskState,
    /// Where the task is, as the manager and then the agent report it.
    pub status: TaskStatus,
    /// Its addresses on the overlays it is attached to, given by the allocator.
    #[serde(default)]
    pub networks: Vec<TaskNetwork>,
}

/// A task's attachment to one overlay network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskNetwork {
    /// The network.
    pub network_id: String,
    /// The task's address, with the network's prefix length (docker shows `10.0.1.5/24`).
    pub address: Ipv4Network,
    /// Other names the task answers to on this network (the service's network aliases).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// An overlay network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Network ID (25 base-36 characters).
    pub id: String,
    /// Version and times.
    pub meta: Meta,
    /// What the user asked for, as docker's create request carries it (name, driver, options,
    /// labels, IPAM configuration, attachable, ingress).
    pub spec: NetworkCreateRequest,
    /// The subnet: the user's, or one cut from the swarm's default address pool.
    pub subnet: Ipv4Network,
    /// The gateway address: the user's, or the subnet's first host address.
    pub gateway: Ipv4Addr,
    /// VXLAN network identifier, allocated from 4096 upwards.
    pub vni: u32,
    /// MTU inside the overlay (`com.docker.network.driver.mtu`, default underlay MTU - 50).
    pub mtu: u16,
}

impl Network {
    /// The network's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether this is the swarm's routing-mesh network.
    pub fn is_ingress(&self) -> bool {
        self.spec.ingress == Some(true)
    }

    /// Whether a task may hold `ip` on this network: inside the subnet, and neither the
    /// subnet's network or broadcast address nor the gateway.
    pub fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(ip)
            && ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && ip != self.gateway
    }
}

impl Task {
    /// Docker's name for the task, given its service's: `<service>.<slot>` or, for a global
    /// service's, `<service>.<node ID>`.
    pub fn name(&self, service_name: &str) -> String {
        match self.slot {
            0 => format!(
                "{service_name}.{}",
                self.node_id.as_deref().unwrap_or_default()
            ),
            slot => format!("{service_name}.{slot}"),
        }
    }

    /// The task's observed state.
    pub fn state(&self) -> TaskState {
        self.status.state.unwrap_or(TaskState::NEW)
    }

    /// Whether the task has stopped for good (complete, failed, shut down, rejected, ...).
    pub fn is_terminal(&self) -> bool {
        is_terminal(self.state())
    }
}

/// Whether a task in `state` has stopped for good.
pub fn is_terminal(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::REMOVE
            | TaskState::ORPHANED
    )
}

/// Which table an object lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// [`Cluster`]
    Cluster,
    /// [`Node`]
    Node,
    /// [`Service`]
    Service,
    /// [`Task`]
    Task,
    /// [`Network`]
    Network,
}

/// A stored object's address: its kind and ID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    /// The table.
    pub kind: Kind,
    /// The object's ID.
    pub id: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.kind, self.id)
    }
}

/// Any stored object. (Variants differ in size; objects are moved rarely, so no boxes.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Object {
    /// The swarm.
    Cluster(Cluster),
    /// A node.
    Node(Node),
    /// A service.
    Service(Service),
    /// A task.
    Task(Task),
    /// An overlay network.
    Network(Network),
}

impl Object {
    /// Where this object is stored.
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::Cluster(c) => ObjectKey {
                kind: Kind::Cluster,
                id: c.id.clone(),
            },
            Object::Node(n) => ObjectKey {
                kind: Kind::Node,
                id: n.id.clone(),
            },
            Object::Service(s) => ObjectKey {
                kind: Kind::Service,
                id: s.id.clone(),
            },
            Object::Task(t) => ObjectKey {
                kind: Kind::Task,
                id: t.id.clone(),
            },
            Object::Network(n) => ObjectKey {
                kind: Kind::Network,
                id: n.id.clone(),
            },
        }
    }

    /// The object's bookkeeping.
    pub fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Object::Cluster(c) => &mut c.meta,
            Object::Node(n) => &mut n.meta,
            Object::Service(s) => &mut s.meta,
            Object::Task(t) => &mut t.meta,
            Object::Network(n) => &mut n.meta,
        }
    }
}
