//! The dispatcher: the leader's end of every node's session. It records heartbeats, hands each
//! node its assignments through a long poll, and takes the tasks' status reports.
//!
//! The long poll doubles as a liveness signal: a node keeps one open at all times, so when its
//! daemon dies the kernel closes the connection, the transport drops the poll, and the session
//! is marked lost at once instead of three heartbeat periods later.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::TaskState;

use super::Manager;
use super::health::heartbeat_period;
use super::routes::{route_table_for, task_networks};
use crate::net::routes::RouteTable;
use crate::rpc::proto::{Assignment, Failure, RouteUpdate, SessionInfo, StatusReport};
use crate::store::state::{is_ingress_port, rank};
use crate::store::{Change, ClusterState, Proposal};

/// How long a poll waits for a change before answering anyway.
const POLL_WAIT: Duration = Duration::from_secs(20);

/// The leader's view of every node's session.
#[derive(Default)]
pub struct Dispatcher {
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Default)]
struct Session {
    last_heartbeat: Option<Instant>,
    open_polls: usize,
    lost_at: Option<Instant>,
    /// The route table last sent to the node, and its tag.
    routes_sent: Option<(u64, RouteTable)>,
}

impl Dispatcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a heartbeat from `node_id` and tells it how to go on.
    pub fn heartbeat(&self, manager: &Manager, node_id: &str) -> SessionInfo {
        self.lock()
            .entry(node_id.to_string())
            .or_default()
            .last_heartbeat = Some(Instant::now());
        SessionInfo {
            period_ms: heartbeat_period(manager).as_millis() as u64,
            managers: manager.manager_addrs(),
            manager: manager.node_is_manager(node_id),
        }
    }

    /// Whether `node_id` sent a heartbeat within `window`.
    pub fn heard_within(&self, node_id: &str, window: Duration) -> bool {
        self.lock()
            .get(node_id)
            .and_then(|s| s.last_heartbeat)
            .is_some_and(|at| at.elapsed() <= window)
    }

    /// Whether `node_id`'s poll was cut off more than `grace` ago and none replaced it.
    pub fn lost_for(&self, node_id: &str, grace: Duration) -> bool {
        let sessions = self.lock();
        let Some(session) = sessions.get(node_id) else {
            return false;
        };
        session.open_polls == 0 && session.lost_at.is_some_and(|at| at.elapsed() > grace)
    }

    /// Answers when `node_id`'s assignments differ from the set the node knows as `known`, or
    /// after a while regardless, with the set and its tag.
    pub async fn assignments(
        &self,
        manager: &Manager,
        node_id: &str,
        known: u64,
    ) -> (u64, Vec<Assignment>) {
        let poll = OpenPoll::open(self, node_id);
        let mut changes = manager.store.changes();
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        loop {
            let (tag, assignments) = {
                let applied = manager.store.read();
                assignments_of(&applied.state, node_id)
            };
            if tag != known || tokio::time::Instant::now() >= deadline {
                poll.answered();
                return (tag, assignments);
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Answers when `node_id`'s route table differs from the one tagged `known`, or after a
    /// while regardless, with the changes. A tag this dispatcher did not hand out (the node is
    /// new, or the leader changed) gets the whole table.
    pub async fn routes(&self, manager: &Manager, node_id: &str, known: u64) -> RouteUpdate {
        let sent = self
            .lock()
            .get_mut(node_id)
            .and_then(|s| s.routes_sent.take())
            .filter(|(tag, _)| *tag == known);
        let reset = sent.is_none();
        let base = sent.map(|(_, table)| table).unwrap_or_default();
        let mut changes = manager.store.changes();
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        loop {
            let (table, data_path_port) = {
                let applied = manager.store.read();
                let port = applied.state.cluster().map_or(4789, |c| c.data_path_port);
                (route_table_for(&applied.state, node_id), port)
            };
            let diff = base.diff(&table);
            if reset || !diff.is_empty() || tokio::time::Instant::now() >= deadline {
                let tag = if diff.is_empty() && !reset {
                    known
                } else {
                    rand::random::<u64>().max(1)
                };
                self.lock()
                    .entry(node_id.to_string())
                    .or_default()
                    .routes_sent = Some((tag, table));
                return RouteUpdate {
                    tag,
                    reset,
                    changes: diff,
                    data_path_port,
                };
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Takes status reports from `node_id`, for tasks assigned to it only.
    pub async fn report(
        &self,
        manager: &Manager,
        node_id: &str,
        reports: Vec<StatusReport>,
    ) -> Result<(), Failure> {
        let changes: Vec<Change> = {
            let applied = manager.store.read();
            reports
                .into_iter()
                .filter(|r| {
                    applied
                        .state
                        .tasks
                        .get(&r.task_id)
                        .is_some_and(|t| t.node_id.as_deref() == Some(node_id))
                })
                .map(|r| Change::TaskStatus {
                    task_id: r.task_id,
                    status: r.status,
                })
                .collect()
        };
        if changes.is_empty() {
            return Ok(());
        }
        manager
            .propose(Proposal { changes })
            .await
            .map_err(|e| Failure::Internal(e.to_string()))
    }
}

/// Counts an open poll for a node; a poll dropped before it answered means the node went away.
struct OpenPoll<'a> {
    dispatcher: &'a Dispatcher,
    node_id: String,
    answered: bool,
}

impl<'a> OpenPoll<'a> {
    fn open(dispatcher: &'a Dispatcher, node_id: &str) -> Self {
        let mut sessions = dispatcher.lock();
        let session = sessions.entry(node_id.to_string()).or_default();
        session.open_polls += 1;
        session.lost_at = None;
        OpenPoll {
            dispatcher,
            node_id: node_id.to_string(),
            answered: false,
        }
    }

    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        let mut sessions = self.dispatcher.lock();
        if let Some(session) = sessions.get_mut(&self.node_id) {
            session.open_polls = session.open_polls.saturating_sub(1);
            if !self.answered {
                session.lost_at = Some(Instant::now());
            }
        }
    }
}

/// The tasks `node_id` must know about (assigned to it, so allocated, and wanted running or
/// still to be stopped), with a tag that changes whenever any of them changes.
pub fn assignments_of(state: &ClusterState, node_id: &str) -> (u64, Vec<Assignment>) {
    let mut hasher = DefaultHasher::new();
    let assignments: Vec<Assignment> = state
        .tasks
        .values()
        .filter(|t| t.node_id.as_deref() == Some(node_id))
        .filter(|t| rank(t.state()) >= rank(TaskState::ASSIGNED))
        .filter(|t| t.desired_state == TaskState::RUNNING || !t.is_terminal())
        .map(|t| {
            (t.id.as_str(), t.meta.version).hash(&mut hasher);
            let service = state.services.get(&t.service_id);
            let service_name = service
                .and_then(|s| s.spec.name.clone())
                .unwrap_or_default();
            let host_ports = service.map_or_else(Vec::new, |s| {
                let ports = s.endpoint.ports.iter();
                ports.filter(|p| !is_ingress_port(p)).cloned().collect()
            });
            Assignment {
                task: t.clone(),
                service_name,
                networks: task_networks(state, t),
                host_ports,
            }
        })
        .collect();
    (hasher.finish(), assignments)
}
