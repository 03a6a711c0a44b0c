//! The restart policy: whether, and when, a slot whose task ended gets a new one.

use std::time::{Duration, SystemTime};

use bollard::models::{TaskSpecRestartPolicyConditionEnum, TaskState};

use super::Plan;
use crate::store::Task;

/// Swarm's default delay between a task's end and its replacement.
const DEFAULT_DELAY: Duration = Duration::from_secs(5);

/// Whether a place (a slot, or a node of a global service) whose tasks are `history` (every task
/// it had, any state) should get a new task now.
pub fn should_replace(plan: &Plan, history: &[&Task]) -> bool {
    let Some(last) = history
        .iter()
        .max_by(|a, b| a.meta.created_at.cmp(&b.meta.created_at))
    else {
        return true;
    };
    if !last.is_terminal() {
        // Stopping on purpose (scale, update, drain): wait until it has stopped, unless its node
        // is gone and nobody will ever report it stopped.
        return plan.on_lost_node(last);
    }
    let ended_by_itself = matches!(
        last.state(),
        TaskState::COMPLETE | TaskState::FAILED | TaskState::REJECTED
    );
    if !ended_by_itself {
        return true;
    }
    let policy = plan
        .service
        .spec
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.clone())
        .unwrap_or_default();
    let condition = policy
        .condition
        .unwrap_or(TaskSpecRestartPolicyConditionEnum::ANY);
    let restartable = match condition {
        TaskSpecRestartPolicyConditionEnum::NONE => false,
        TaskSpecRestartPolicyConditionEnum::ON_FAILURE => last.state() != TaskState::COMPLETE,
        _ => true,
    };
    if !restartable {
        return false;
    }
    let max_attempts = policy.max_attempts.unwrap_or(0).max(0) as usize;
    let window = Duration::from_nanos(policy.window.unwrap_or(0).max(0) as u64);
    if max_attempts > 0 && attempts(plan.now, history, window) >= max_attempts {
        return false;
    }
    let delay = policy
        .delay
        .map_or(DEFAULT_DELAY, |ns| Duration::from_nanos(ns.max(0) as u64));
    ended_at(last).is_none_or(|at| plan.now >= at + delay)
}

/// How many tasks of this place ended by themselves within `window` of `now` (0: ever).
fn attempts(now: SystemTime, history: &[&Task], window: Duration) -> usize {
    history
        .iter()
        .filter(|t| {
            matches!(
                t.state(),
                TaskState::COMPLETE | TaskState::FAILED | TaskState::REJECTED
            )
        })
        .filter(|t| {
            window.is_zero()
                || ended_at(t)
                    .is_some_and(|at| now.duration_since(at).unwrap_or_default() <= window)
        })
        .count()
}

fn ended_at(task: &Task) -> Option<SystemTime> {
    task.status
        .timestamp
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
}
