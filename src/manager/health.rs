//! Which nodes are up: the dispatcher's sessions decide Ready or Down, Raft's answers decide
//! whether a manager is Reachable. Runs on the leader, which writes changes to the store.
//!
//! A node is down after three missed heartbeat periods, as in Swarm, or at once when its session
//! broke (its daemon died and the kernel closed its connection) and no new one opened within
//! a second: a crashed process is noticed in about a second, a vanished host in three periods.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::NodeState;

use super::Manager;
use crate::store::{Node, Object, Proposal};

/// How often the leader re-evaluates node health.
const TICK: Duration = Duration::from_millis(250);
/// A manager that answered no Raft RPC for this long is unreachable (Raft heartbeats every 50 ms).
const REACHABLE_WINDOW: Duration = Duration::from_secs(1);
/// Swarm marks a node down after this many missed heartbeat periods.
const MISSED_HEARTBEATS: u32 = 3;
/// How long a broken session may stay unreplaced before its node is down.
const LOST_SESSION_GRACE: Duration = Duration::from_secs(1);
/// Swarm's default heartbeat period.
const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// The heartbeat period of the swarm's spec (`swarm update --dispatcher-heartbeat`).
pub fn heartbeat_period(manager: &Manager) -> Duration {
    let nanos = manager
        .cluster()
        .and_then(|c| c.spec.dispatcher)
        .and_then(|d| d.heartbeat_period);
    nanos
        .filter(|&n| n > 0)
        .map_or(DEFAULT_PERIOD, |n| Duration::from_nanos(n as u64))
}

/// Runs until aborted: on the leader, writes every change of node status or reachability.
pub async fn run(manager: Arc<Manager>) {
    let mut leader_since = None;
    loop {
        tokio::time::sleep(TICK).await;
        if !manager.is_leader() {
            leader_since = None;
            continue;
        }
        let since: Instant = *leader_since.get_or_insert_with(Instant::now);
        for node in changed_nodes(&manager, since) {
            let version = node.meta.version;

            // A conflict means someone else changed the node; the next tick looks again.
            if let Err(e) = manager
                .propose(Proposal::update(Object::Node(node), version))
                .await
            {
                tracing::debug!("node health not written: {e}");
            }
        }
    }
}

/// The nodes whose stored health differs from what the leader sees now, updated.
fn changed_nodes(manager: &Manager, leader_since: Instant) -> Vec<Node> {
    let timeout = heartbeat_period(manager) * MISSED_HEARTBEATS;
    // A new leader has heard nobody yet: it marks nodes up as they call, and none down until
    // they have had a full timeout to reach it.
    let settling = leader_since.elapsed() < timeout;
    let applied = manager.store.read();
    applied
        .state
        .nodes
        .values()
        .filter_map(|node| {
            let mut updated = node.clone();
            let dispatcher = &manager.dispatcher;
            let heard = node.id == manager.node_id
                || (dispatcher.heard_within(&node.id, timeout)
                    && !dispatcher.lost_for(&node.id, LOST_SESSION_GRACE));
            if heard {
                updated.status.state = Some(NodeState::READY);
                updated.status.message = None;
            } else if !settling {
                updated.status.state = Some(NodeState::DOWN);
                updated.status.message = Some("heartbeat failure".into());
            }
            if let Some(record) = updated.manager.as_mut() {
                record.reachable = node.id == manager.node_id
                    || manager
                        .health
                        .answered_within(record.raft_id, REACHABLE_WINDOW);
            }
            (updated != *node).then(|| {
                updated.meta.touch();
                updated
            })
        })
        .collect()
}
