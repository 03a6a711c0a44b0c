//! The messages nodes exchange on the control port (2377), one request and one response at a
//! time on a connection.
//!
//! Who may send what is checked against the caller's certificate by the manager's handler:
//! `RootCa` and `Join` need none (that is how a node gets one); Raft, `Propose` and `AddVoter`
//! need a manager certificate; `Heartbeat` and `Renew` need any certificate of a node that is
//! still in the swarm.

use bollard::models::{EndpointPortConfig, NodeDescription, NodeSpecAvailabilityEnum, TaskStatus};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::net::routes::{NetworkInfo, RouteChange};
use crate::store::raft::{RaftId, TypeConfig};
use crate::store::{Conflict, Proposal, Task};

/// A request to a manager.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // Raft's messages are large; requests are not stored.
pub enum Request {
    /// The swarm's root CA certificate, which a joining node checks against its token.
    RootCa,
    /// Join with a token: a certificate for a new node.
    Join(JoinRequest),
    /// Raft log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft election.
    Vote(VoteRequest<RaftId>),
    /// Raft snapshot transfer.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write forwarded to the leader by another manager.
    Propose(Proposal),
    /// Make the calling manager a Raft voter (sent to the leader by a new or promoted manager).
    AddVoter {
        /// The caller's new Raft member ID.
        raft_id: RaftId,
        /// `host:port` of the caller's control endpoint.
        addr: String,
    },
    /// The dispatcher session: the calling node is alive.
    Heartbeat,
    /// The caller's tasks, answered once they differ from the set tagged `known` (a long poll).
    Assignments {
        /// The tag of the set the caller has; 0 at first.
        known: u64,
    },
    /// The changes to the caller's route table since the table tagged `known`, once there are
    /// some (a long poll); the whole table when the manager does not know that tag.
    Routes {
        /// The tag of the table the caller has; 0 at first.
        known: u64,
    },
    /// How the caller's tasks are doing.
    TaskStatuses(Vec<StatusReport>),
    /// Log subscriptions for the caller's tasks, once there are some (a long poll).
    LogSubscriptions,
    /// Lines of the caller's tasks for a subscription.
    PublishLogs {
        /// The subscription.
        subscription: u64,
        /// The lines.
        lines: Vec<LogLine>,
        /// Nothing more will come from this node.
        done: bool,
    },
    /// A new certificate for the caller, for the key behind this CSR (renewal, role change).
    Renew {
        /// PEM certificate signing request.
        csr_pem: String,
    },
}

/// What a joining node sends with its token.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The whole join token; the manager compares it in constant time.
    pub token: String,
    /// PEM CSR for the node's new key.
    pub csr_pem: String,
    /// Hostname, platform, resources.
    pub description: NodeDescription,
    /// The address the node is reached at (`ip` or `ip:port`).
    pub advertise_addr: String,
    /// `active`, `pause` or `drain` from `swarm join --availability`.
    pub availability: Option<NodeSpecAvailabilityEnum>,
}

/// A manager's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The root CA certificate, PEM.
    RootCa {
        /// PEM.
        cert_pem: String,
    },
    /// The joining node's identity and certificate.
    Joined(Joined),
    /// Answer to [`Request::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<RaftId>, RaftError<RaftId>>),
    /// Answer to [`Request::Vote`].
    Vote(Result<VoteResponse<RaftId>, RaftError<RaftId>>),
    /// Answer to [`Request::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<RaftId>, RaftError<RaftId, InstallSnapshotError>>,
    ),
    /// The request was carried out.
    Done,
    /// Answer to [`Request::Heartbeat`]: how the session goes on.
    Session(SessionInfo),
    /// The caller's tasks.
    Assignments {
        /// Changes whenever the set changes.
        tag: u64,
        /// Every task the node must run or stop.
        tasks: Vec<Assignment>,
    },
    /// Changes to the caller's route table.
    Routes(RouteUpdate),
    /// Log subscriptions for the caller.
    LogSubscriptions(Vec<LogSubscription>),
    /// A renewed certificate.
    Certificate {
        /// PEM node certificate.
        cert_pem: String,
    },
    /// The request failed.
    Failed(Failure),
}

/// A new node's identity.
#[derive(Debug, Serialize, Deserialize)]
pub struct Joined {
    /// The node's ID (its certificate's CN).
    pub node_id: String,
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// Whether the token made it a manager.
    pub manager: bool,
    /// The managers, so the node can find one after a restart or a manager's death.
    pub managers: Vec<String>,
}

/// What the dispatcher tells a node each heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// When to send the next heartbeat, in milliseconds.
    pub period_ms: u64,
    /// Every manager's control address.
    pub managers: Vec<String>,
    /// The role the node should have: a change means promote or demote.
    pub manager: bool,
}

/// A task a node must run (or stop), with what the agent needs to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The task as the store has it.
    pub task: Task,
    /// Its service's name, for the task's name and logs.
    pub service_name: String,
    /// The networks it is attached to (its addresses are in the task), so the agent can
    /// plumb them before the task starts.
    #[serde(default)]
    pub networks: Vec<NetworkInfo>,
    /// Its service's ports published in host mode, as the service's endpoint holds them: the
    /// node binds them while the task runs and forwards them to it.
    #[serde(default)]
    pub host_ports: Vec<EndpointPortConfig>,
}

/// Changes to a node's route table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteUpdate {
    /// The tag of the table these changes make; the next poll sends it as `known`.
    pub tag: u64,
    /// Whether the changes start from an empty table (the manager did not know the caller's).
    pub reset: bool,
    /// The changes, in order.
    pub changes: Vec<RouteChange>,
    /// The swarm's VXLAN UDP port.
    pub data_path_port: u16,
}

/// A request for task output, as `service logs` asks for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogSubscription {
    /// Identifies the subscription in the lines sent back.
    pub id: u64,
    /// The tasks whose output is wanted.
    pub task_ids: Vec<String>,
    /// Keep sending new lines until the subscriber leaves.
    pub follow: bool,
    /// Only the last lines of each task.
    pub tail: Option<usize>,
    /// Only lines written at or after this time (RFC 3339).
    pub since: Option<String>,
}

/// One line of a task's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// The task that wrote it.
    pub task_id: String,
    /// When (RFC 3339, nanoseconds).
    pub time: String,
    /// Whether it went to stderr.
    pub stderr: bool,
    /// The line, without its newline.
    pub line: String,
}

/// A task's new status, from the node that runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The task.
    pub task_id: String,
    /// Its status now.
    pub status: TaskStatus,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum Failure {
    /// Only the leader does this; here is where it is, if known.
    #[error("not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader {
        /// The leader's control address.
        leader: Option<String>,
    },
    /// The caller may not do this (no or wrong certificate, wrong token, removed node).
    #[error("{0}")]
    Denied(String),
    /// A write was refused by the store.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The manager failed.
    #[error("{0}")]
    Internal(String),
}
