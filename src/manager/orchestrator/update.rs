//! Rolling updates and rollbacks. A service whose generation moved on has outdated tasks; they
//! are replaced `parallelism` at a time, `delay` apart, and a new task that fails within the
//! `monitor` period triggers the failure action (pause, continue or rollback).
//!
//! Progress is derived from the tasks themselves, so a new leader picks an update up where the
//! old one left it.

use std::time::Duration;

use bollard::models::{
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatus,
    ServiceUpdateStatusStateEnum as UpdateState, TaskState,
};

use super::Plan;
use crate::store::objects::timestamp;
use crate::store::{Change, Object, Proposal, Task};

/// Swarm's default monitoring period after each task update.
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);

/// The update (or rollback) settings in force for the service now.
fn config(plan: &Plan) -> ServiceSpecUpdateConfig {
    let spec = &plan.service.spec;
    let rolling_back = state(plan) == Some(UpdateState::ROLLBACK_STARTED);
    let config = if rolling_back {
        spec.rollback_config
            .as_ref()
            .map(|r| ServiceSpecUpdateConfig {
                parallelism: r.parallelism,
                delay: r.delay,
                monitor: r.monitor,
                max_failure_ratio: r.max_failure_ratio,
                ..Default::default()
            })
    } else {
        spec.update_config.clone()
    };
    config.unwrap_or_default()
}

fn state(plan: &Plan) -> Option<UpdateState> {
    plan.service.update_status.as_ref().and_then(|s| s.state)
}

/// Whether new tasks start before the old ones stop (`--update-order start-first`).
pub fn starts_first(plan: &Plan) -> bool {
    config(plan).order == Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST)
}

/// The outdated tasks to replace in this round.
pub fn select<'a>(plan: &Plan, outdated: &[&'a Task]) -> Vec<&'a Task> {
    if outdated.is_empty()
        || matches!(
            state(plan),
            Some(UpdateState::PAUSED | UpdateState::ROLLBACK_PAUSED)
        )
    {
        return Vec::new();
    }
    let config = config(plan);
    let in_flight = plan.tasks.iter().filter(|t| is_in_flight(plan, t)).count();
    let parallelism = config.parallelism.unwrap_or(1).max(0) as usize;
    let capacity = if parallelism == 0 {
        outdated.len()
    } else {
        parallelism.saturating_sub(in_flight)
    };
    let delay = Duration::from_nanos(config.delay.unwrap_or(0).max(0) as u64);
    let last_started = plan
        .tasks
        .iter()
        .filter(|t| t.generation == plan.service.generation)
        .filter_map(|t| humantime::parse_rfc3339(&t.meta.created_at).ok())
        .max();
    if last_started.is_some_and(|at| plan.now < at + delay) {
        return Vec::new();
    }
    let mut chosen: Vec<&Task> = outdated.to_vec();
    chosen.sort_by_key(|t| (t.slot, t.node_id.clone()));
    chosen.truncate(capacity);
    chosen
}

/// A task the update started and that has not settled yet: a new one not running yet, or an
/// old one still stopping.
fn is_in_flight(plan: &Plan, task: &Task) -> bool {
    let current = task.generation == plan.service.generation;
    if current {
        plan.is_alive(task) && task.state() != TaskState::RUNNING
    } else {
        task.desired_state != TaskState::RUNNING && !task.is_terminal() && !plan.on_lost_node(task)
    }
}

/// Keeps the service's update status true: completed, paused, or rolled back on failure.
pub fn track(plan: &Plan, changes: &mut Vec<Change>) {
    let Some(current) = state(plan) else { return };
    if !matches!(
        current,
        UpdateState::UPDATING | UpdateState::ROLLBACK_STARTED
    ) {
        return;
    }
    let config = config(plan);
    let monitor = config
        .monitor
        .map_or(DEFAULT_MONITOR, |ns| Duration::from_nanos(ns.max(0) as u64));
    if let Some(failed) = plan.tasks.iter().find(|t| failed_early(plan, t, monitor)) {
        let action = config
            .failure_action
            .unwrap_or(ServiceSpecUpdateConfigFailureActionEnum::PAUSE);
        match (current, action) {
            (_, ServiceSpecUpdateConfigFailureActionEnum::CONTINUE) => {}
            (UpdateState::UPDATING, ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK) => {
                let message = format!(
                    "update rolled back due to failure or early termination of task {}",
                    failed.id
                );
                return changes.extend(rollback(plan, &message));
            }
            (UpdateState::ROLLBACK_STARTED, _) => {
                let message = format!(
                    "rollback paused due to failure or early termination of task {}",
                    failed.id
                );
                return changes.extend(set_status(plan, UpdateState::ROLLBACK_PAUSED, &message));
            }
            _ => {
                let message = format!(
                    "update paused due to failure or early termination of task {}",
                    failed.id
                );
                return changes.extend(set_status(plan, UpdateState::PAUSED, &message));
            }
        }
    }
    let outdated = plan
        .tasks
        .iter()
        .any(|t| t.generation < plan.service.generation && plan.is_alive(t));
    let settling = plan.tasks.iter().any(|t| is_in_flight(plan, t));
    // As swarmkit: the update is done once every new task has run for a whole monitor period,
    // so a task failing late in the last batch still triggers the failure action.
    let monitored = plan
        .tasks
        .iter()
        .filter(|t| t.generation == plan.service.generation && plan.is_alive(t))
        .all(|t| running_for(plan, t) >= monitor);
    if !outdated && !settling && monitored {
        let (done, message) = match current {
            UpdateState::ROLLBACK_STARTED => {
                (UpdateState::ROLLBACK_COMPLETED, "rollback completed")
            }
            _ => (UpdateState::COMPLETED, "update completed"),
        };
        changes.extend(set_status(plan, done, message));
    }
}

/// How long `task` has been running (zero if it is not running).
fn running_for(plan: &Plan, task: &Task) -> Duration {
    let since = task
        .status
        .timestamp
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok());
    match (task.state(), since) {
        (TaskState::RUNNING, Some(since)) => plan.now.duration_since(since).unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// A task of the current generation that ended on its own within `monitor` of its creation.
fn failed_early(plan: &Plan, task: &Task, monitor: Duration) -> bool {
    if task.generation != plan.service.generation
        || !matches!(task.state(), TaskState::FAILED | TaskState::REJECTED)
    {
        return false;
    }
    let created = humantime::parse_rfc3339(&task.meta.created_at).ok();
    let ended = task
        .status
        .timestamp
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok());
    match (created, ended) {
        (Some(created), Some(ended)) => {
            ended.duration_since(created).unwrap_or_default() <= monitor
        }
        _ => false,
    }
}

fn set_status(plan: &Plan, state: UpdateState, message: &str) -> Option<Change> {
    let mut service = plan.service.clone();
    let status = service
        .update_status
        .get_or_insert_with(ServiceUpdateStatus::default);
    status.state = Some(state);
    status.message = Some(message.to_string());
    if matches!(
        state,
        UpdateState::COMPLETED | UpdateState::ROLLBACK_COMPLETED
    ) {
        status.completed_at = Some(timestamp(plan.now));
    }
    service.meta.updated_at = timestamp(plan.now);
    let version = service.meta.version;
    Proposal::update(Object::Service(service), version)
        .changes
        .pop()
}

fn rollback(plan: &Plan, message: &str) -> Option<Change> {
    let mut service = plan.service.clone();
    let previous = service.previous_spec.take()?;
    service.previous_spec = Some(std::mem::replace(&mut service.spec, previous));
    service.generation += 1;
    service.update_status = Some(ServiceUpdateStatus {
        state: Some(UpdateState::ROLLBACK_STARTED),
        started_at: Some(timestamp(plan.now)),
        completed_at: None,
        message: Some(message.to_string()),
    });
    service.meta.updated_at = timestamp(plan.now);
    let version = service.meta.version;
    Proposal::update(Object::Service(service), version)
        .changes
        .pop()
}
