//! The orchestrator: turns services into tasks and keeps them there. Replicated services keep one
//! running task per slot, global services one per eligible node; dead tasks are replaced as the
//! restart policy allows, outdated ones by a rolling update, and old ones trimmed to the history
//! limit.
//!
//! `reconcile` is a pure function of the state and the clock; the loop around it runs on the
//! leader and proposes what it returns.

mod global;
mod replicated;
mod restart;
mod update;

use std::time::{Duration, SystemTime};

use bollard::models::{NodeSpecAvailabilityEnum, NodeState, TaskState, TaskStatus};

use crate::pki;
use crate::store::objects::{Meta, timestamp};
use crate::store::{Change, ClusterState, Node, Object, Precondition, Service, Task};

/// How often the orchestrator looks again even without a change (restart delays, update delays).
pub const TICK: Duration = Duration::from_millis(250);

/// Everything the orchestrator would change in `state` at `now`.
pub fn reconcile(state: &ClusterState, now: SystemTime) -> Vec<Change> {
    let history_limit = state
        .cluster()
        .and_then(|c| c.spec.orchestration.as_ref())
        .and_then(|o| o.task_history_retention_limit)
        .unwrap_or(5)
        .max(0) as usize;
    let mut changes = Vec::new();
    for service in state.services.values() {
        let tasks: Vec<&Task> = state
            .tasks
            .values()
            .filter(|t| t.service_id == service.id)
            .collect();
        let plan = Plan {
            state,
            service,
            tasks: &tasks,
            now,
        };
        if is_global(service) {
            global::reconcile(&plan, &mut changes);
        } else {
            replicated::reconcile(&plan, &mut changes);
        }
        update::track(&plan, &mut changes);
        trim_history(&tasks, history_limit, &mut changes);
    }
    stop_tasks_of_removed_services(state, now, &mut changes);
    changes
}

/// What one service's reconciliation looks at.
pub struct Plan<'a> {
    /// The whole state.
    pub state: &'a ClusterState,
    /// The service.
    pub service: &'a Service,
    /// Its tasks, in every state.
    pub tasks: &'a [&'a Task],
    /// The time of this round.
    pub now: SystemTime,
}

impl Plan<'_> {
    /// Whether `task` is still doing its job: wanted running, not ended, on a node that is up.
    pub fn is_alive(&self, task: &Task) -> bool {
        task.desired_state == TaskState::RUNNING && !task.is_terminal() && !self.on_lost_node(task)
    }

    /// Whether `task` sits on a node that is down or gone.
    pub fn on_lost_node(&self, task: &Task) -> bool {
        task.node_id
            .as_ref()
            .is_some_and(|id| self.state.nodes.get(id).is_none_or(|n| !is_up(n)))
    }

    /// A new task of this service for `slot` (replicated) or `node` (global).
    pub fn new_task(&self, slot: u64, node: Option<&Node>) -> Change {
        let at = timestamp(self.now);
        let task = Task {
            id: pki::new_id(),
            meta: Meta {
                version: 0,
                created_at: at.clone(),
                updated_at: at.clone(),
            },
            service_id: self.service.id.clone(),
            slot,
            node_id: node.map(|n| n.id.clone()),
            generation: self.service.generation,
            spec: self.service.spec.task_template.clone().unwrap_or_default(),
            desired_state: TaskState::RUNNING,
            // Every task waits for the allocator (its addresses); a global task then goes to
            // the node it was made for, a replicated one to the node the scheduler picks.
            status: TaskStatus {
                timestamp: Some(at),
                state: Some(TaskState::NEW),
                message: Some("created".into()),
                ..Default::default()
            },
            networks: Vec::new(),
        };
        Change::Put {
            object: Object::Task(task),
            precondition: Precondition::Absent,
        }
    }

    /// Tells `task` to stop.
    pub fn shut_down(&self, task: &Task) -> Change {
        Change::TaskDesired {
            task_id: task.id.clone(),
            desired: TaskState::SHUTDOWN,
            at: timestamp(self.now),
        }
    }
}

/// Whether a node is up and may keep its tasks.
pub fn is_up(node: &Node) -> bool {
    node.status.state == Some(NodeState::READY)
}

/// Whether a node takes tasks (up and active; `pause` keeps tasks but takes no new ones).
pub fn is_active(node: &Node) -> bool {
    is_up(node)
        && node
            .spec
            .availability
            .is_none_or(|a| a == NodeSpecAvailabilityEnum::ACTIVE)
}

/// Whether a node is drained: its tasks move elsewhere.
pub fn is_drained(node: &Node) -> bool {
    node.spec.availability == Some(NodeSpecAvailabilityEnum::DRAIN)
}

fn is_global(service: &Service) -> bool {
    service
        .spec
        .mode
        .as_ref()
        .is_some_and(|m| m.global.is_some())
}

/// Keeps at most `limit` ended tasks per slot (or node, for global services), newest first.
fn trim_history(tasks: &[&Task], limit: usize, changes: &mut Vec<Change>) {
    let mut by_place: std::collections::BTreeMap<(u64, Option<&str>), Vec<&Task>> =
        Default::default();
    for task in tasks
        .iter()
        .filter(|t| t.is_terminal() && t.desired_state != TaskState::RUNNING)
    {
        let node = if task.slot == 0 {
            task.node_id.as_deref()
        } else {
            None
        };
        by_place.entry((task.slot, node)).or_default().push(task);
    }
    for mut ended in by_place.into_values() {
        ended.sort_by(|a, b| b.meta.created_at.cmp(&a.meta.created_at));
        for task in ended.into_iter().skip(limit) {
            changes.push(Change::Delete {
                key: Object::Task((*task).clone()).key(),
            });
        }
    }
}

/// Tasks whose service is gone: stop them, and forget them once they have stopped (or their
/// node is gone, so nobody will report them stopped).
fn stop_tasks_of_removed_services(
    state: &ClusterState,
    now: SystemTime,
    changes: &mut Vec<Change>,
) {
    for task in state
        .tasks
        .values()
        .filter(|t| !state.services.contains_key(&t.service_id))
    {
        let node_lost = task
            .node_id
            .as_ref()
            .is_none_or(|id| state.nodes.get(id).is_none_or(|n| !is_up(n)));
        if task.is_terminal() || node_lost {
            changes.push(Change::Delete {
                key: Object::Task(task.clone()).key(),
            });
        } else if task.desired_state == TaskState::RUNNING {
            changes.push(Change::TaskDesired {
                task_id: task.id.clone(),
                desired: TaskState::SHUTDOWN,
                at: timestamp(now),
            });
        }
    }
}

#[cfg(test)]
mod tests;
