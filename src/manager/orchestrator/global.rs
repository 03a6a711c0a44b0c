//! Global services: one live task on every node that can take it.

use bollard::models::TaskState;

use super::{Plan, is_up, restart, update};
use crate::manager::placement::eligible;
use crate::store::{Change, Task};

/// Appends what keeps one task of `plan.service` on every eligible node.
pub fn reconcile(plan: &Plan, changes: &mut Vec<Change>) {
    let mut outdated = Vec::new();
    for node in plan.state.nodes.values() {
        let history: Vec<&Task> = plan
            .tasks
            .iter()
            .copied()
            .filter(|t| t.node_id.as_deref() == Some(node.id.as_str()))
            .collect();
        let wanted = eligible(&plan.service.spec, node);
        // `pause` keeps the tasks a node has; anything else that is not `wanted` loses them.
        let keeps = wanted || (is_up(node) && !super::is_drained(node) && !history.is_empty());
        let mut alive = Vec::new();
        for task in history
            .iter()
            .filter(|t| t.desired_state == TaskState::RUNNING)
        {
            if plan.is_alive(task) && keeps {
                alive.push(*task);
            } else {
                changes.push(plan.shut_down(task));
            }
        }
        match alive.as_slice() {
            [] if wanted && restart::should_replace(plan, &history) => {
                changes.push(plan.new_task(0, Some(node)))
            }
            [task] if task.generation < plan.service.generation => outdated.push(*task),
            [_, extra @ ..] => changes.extend(extra.iter().map(|t| plan.shut_down(t))),
            _ => {}
        }
    }
    // A global service's node has room for one task: updates always stop first.
    changes.extend(
        update::select(plan, &outdated)
            .into_iter()
            .map(|t| plan.shut_down(t)),
    );
}
