//! Replicated services: one live task per slot, slots 1 to the replica count.

use std::collections::BTreeMap;

use bollard::models::TaskState;

use super::{Plan, is_drained, restart, update};
use crate::store::{Change, Task};

/// Appends what keeps `plan.service`'s slots filled.
pub fn reconcile(plan: &Plan, changes: &mut Vec<Change>) {
    let replicas = plan
        .service
        .spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(1)
        .max(0) as u64;
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for task in plan.tasks {
        slots.entry(task.slot).or_default().push(task);
    }
    let mut outdated = Vec::new();
    for slot in 1..=replicas.max(slots.keys().copied().max().unwrap_or(0)) {
        let history = slots.get(&slot).map(Vec::as_slice).unwrap_or_default();
        let mut alive = Vec::new();
        for task in history
            .iter()
            .filter(|t| t.desired_state == TaskState::RUNNING)
        {
            if plan.is_alive(task) && !on_drained_node(plan, task) {
                alive.push(*task);
            } else {
                // Ended, lost with its node, or on a drained node: it is history now.
                changes.push(plan.shut_down(task));
            }
        }
        if slot > replicas {
            changes.extend(alive.iter().map(|t| plan.shut_down(t)));
            continue;
        }
        match alive.as_slice() {
            [] if restart::should_replace(plan, history) => changes.push(plan.new_task(slot, None)),
            [] => {}
            [task] if task.generation < plan.service.generation => outdated.push(*task),
            [..] => {
                // start-first update: once the new task runs, the old one goes.
                if let Some(new) = alive
                    .iter()
                    .find(|t| t.generation == plan.service.generation)
                {
                    if new.state() == TaskState::RUNNING {
                        changes.extend(
                            alive
                                .iter()
                                .filter(|t| t.id != new.id)
                                .map(|t| plan.shut_down(t)),
                        );
                    }
                }
            }
        }
    }
    for task in update::select(plan, &outdated) {
        if update::starts_first(plan) {
            changes.push(plan.new_task(task.slot, None));
        } else {
            changes.push(plan.shut_down(task));
        }
    }
}

fn on_drained_node(plan: &Plan, task: &Task) -> bool {
    task.node_id
        .as_ref()
        .and_then(|id| plan.state.nodes.get(id))
        .is_some_and(is_drained)
}
