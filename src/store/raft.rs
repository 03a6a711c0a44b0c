//! The Raft type configuration: what the log carries and what a member is.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::state::{Conflict, Proposal};

/// A manager's Raft member ID. Random per manager and never reused, as in swarmkit.
pub type RaftId = u64;

/// What Raft knows of a member: where to reach it and which node it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftPeer {
    /// `host:port` of the member's control endpoint.
    pub addr: String,
    /// The swarm node ID of the member, checked against its certificate's CN.
    pub node_id: String,
}

impl fmt::Display for RaftPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node_id, self.addr)
    }
}

/// The outcome of applying one proposal: refusals are replicated results, not errors.
pub type ApplyResult = Result<(), Conflict>;

openraft::declare_raft_types!(
    /// shoal's Raft: the log carries [`Proposal`]s; members are [`RaftPeer`]s.
    pub TypeConfig:
        D = Proposal,
        R = ApplyResult,
        NodeId = RaftId,
        Node = RaftPeer,
);

/// A log entry of shoal's Raft.
pub type Entry = openraft::Entry<TypeConfig>;
/// A storage failure as openraft reports it.
pub type StorageError = openraft::StorageError<RaftId>;
/// A log ID of shoal's Raft.
pub type LogId = openraft::LogId<RaftId>;

/// Raft timing, much tighter than Swarm's 1 s tick and 10-tick election. A follower that heard
/// from a leader waits out openraft's leader lease (`election_timeout_max`) plus a random
/// election timeout before it campaigns, so a dead leader is replaced after 0.8-1 s plus one
/// round trip. Shorter timeouts would invite needless elections on busy two-core hosts.
/// Snapshot cadence and the log kept for slow followers follow swarmkit's defaults.
pub fn config() -> openraft::Config {
    openraft::Config {
        cluster_name: "shoal".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 500,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 500,
        ..Default::default()
    }
}
