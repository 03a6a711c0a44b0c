//! A service's `deploy:` section (and its health check) as swarm's task and service
//! settings: mode and replicas, resources, restart policy, update and rollback rollouts,
//! placement; converted as docker's `compose/convert` does.

use std::collections::HashMap;

use bollard::models::{
    HealthConfig, Limit, ResourceObject, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecModeReplicatedJob, ServiceSpecUpdateConfig, TaskSpecPlacement,
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum as Condition,
};

use super::file::{Deploy, Healthcheck, ResourceAmounts, RestartPolicy, UpdateConfig, Words};
// Durations are Go durations in nanoseconds, as docker reads them.
use crate::cli::duration::parse_go_duration as duration;
use crate::cli::service::parse::{nano_cpus, ram_bytes};

/// `replicated` (with its replica count), `global`, or one of the job modes.
pub fn mode(deploy: &Deploy) -> Result<ServiceSpecMode, String> {
    let replicas = deploy.replicas.map(i64::try_from).transpose();
    let replicas = replicas.map_err(|_| "replicas out of range".to_string())?;
    let global_with_replicas =
        || Err("replicas can only be used with replicated or replicated-job mode".to_string());
    match deploy.mode.as_deref().unwrap_or_default() {
        "replicated" | "" => Ok(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas }),
            ..Default::default()
        }),
        "global" | "global-job" if replicas.is_some() => global_with_replicas(),
        "global" => Ok(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }),
        "global-job" => Ok(ServiceSpecMode {
            global_job: Some(HashMap::new()),
            ..Default::default()
        }),
        "replicated-job" => Ok(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: replicas,
                total_completions: replicas,
            }),
            ..Default::default()
        }),
        other => Err(format!("unknown mode: {other}")),
    }
}

/// Limits and reservations; docker always sends the (maybe empty) pair.
pub fn resources(deploy: &Deploy) -> Result<TaskSpecResources, String> {
    let amounts = |amounts: &ResourceAmounts| -> Result<(Option<i64>, Option<i64>), String> {
        let cpus = amounts.cpus.as_ref().map(|c| nano_cpus(&c.to_string()));
        let memory = amounts.memory.as_ref().map(|m| ram_bytes(&m.to_string()));
        Ok((cpus.transpose()?, memory.transpose()?))
    };
    let limits = deploy.resources.limits.as_ref();
    let reservations = deploy.resources.reservations.as_ref();
    Ok(TaskSpecResources {
        limits: limits
            .map(|limits| {
                let (nano_cpus, memory_bytes) = amounts(limits)?;
                Ok::<_, String>(Limit {
                    nano_cpus,
                    memory_bytes,
                    pids: limits.pids,
                })
            })
            .transpose()?,
        reservations: reservations
            .map(|reservations| {
                let (nano_cpus, memory_bytes) = amounts(reservations)?;
                Ok::<_, String>(ResourceObject {
                    nano_cpus,
                    memory_bytes,
                    generic_resources: None,
                })
            })
            .transpose()?,
        ..Default::default()
    })
}

/// `deploy.restart_policy`, else, as docker does, the engine's `restart:` read as one.
pub fn restart_policy(
    deploy: &Deploy,
    restart: Option<&str>,
) -> Result<Option<TaskSpecRestartPolicy>, String> {
    if let Some(policy) = &deploy.restart_policy {
        return swarm_restart_policy(policy).map(Some);
    }
    let restart = restart.unwrap_or_default();
    let (name, count) = restart.split_once(':').unwrap_or((restart, ""));
    let max_attempts = match count {
        "" => None,
        count => Some(count.parse::<i64>().map_err(|_| {
            format!("invalid restart policy: maximum retry count must be a number: {count}")
        })?),
    }
    .filter(|&n| n > 0);
    let condition = match name {
        "" | "no" => return Ok(None),
        "always" | "unless-stopped" => Condition::ANY,
        "on-failure" => Condition::ON_FAILURE,
        other => {
            return Err(format!(
                "invalid restart policy: unknown policy '{other}' (must be one of 'no', \
                 'always', 'on-failure', or 'unless-stopped')"
            ));
        }
    };
    Ok(Some(TaskSpecRestartPolicy {
        condition: Some(condition),
        max_attempts,
        ..Default::default()
    }))
}

/// The swarm restart policy as the file spells it.
fn swarm_restart_policy(policy: &RestartPolicy) -> Result<TaskSpecRestartPolicy, String> {
    let condition = policy
        .condition
        .as_deref()
        .map(|c| {
            c.parse::<Condition>().map_err(|_| {
                format!("invalid restart condition {c:?} (must be none, on-failure or any)")
            })
        })
        .transpose()?;
    let max_attempts = policy.max_attempts.map(i64::try_from).transpose();
    Ok(TaskSpecRestartPolicy {
        condition,
        delay: policy.delay.as_deref().map(duration).transpose()?,
        max_attempts: max_attempts.map_err(|_| "max_attempts out of range".to_string())?,
        window: policy.window.as_deref().map(duration).transpose()?,
    })
}

/// How updates roll; a rollback is configured alike. Parallelism defaults to one task.
pub fn update(config: &UpdateConfig) -> Result<ServiceSpecUpdateConfig, String> {
    let parallelism = i64::try_from(config.parallelism.unwrap_or(1));
    let failure_action = config.failure_action.as_deref().unwrap_or_default();
    let order = config.order.as_deref().unwrap_or_default();
    Ok(ServiceSpecUpdateConfig {
        parallelism: Some(parallelism.map_err(|_| "parallelism out of range".to_string())?),
        delay: Some(duration_or_zero(config.delay.as_deref())?),
        failure_action: Some(failure_action.parse().map_err(|_| {
            format!(
                "invalid failure_action {failure_action:?} (must be continue, pause or rollback)"
            )
        })?),
        monitor: Some(duration_or_zero(config.monitor.as_deref())?),
        max_failure_ratio: Some(config.max_failure_ratio.unwrap_or(0.0)),
        order: Some(
            order.parse().map_err(|_| {
                format!("invalid order {order:?} (must be start-first or stop-first)")
            })?,
        ),
    })
}

/// A Go duration, or none at all.
fn duration_or_zero(text: Option<&str>) -> Result<i64, String> {
    text.map_or(Ok(0), duration)
}

/// Constraints, spread preferences and the per-node limit.
pub fn placement(deploy: &Deploy) -> TaskSpecPlacement {
    let placement = &deploy.placement;
    let spread = |descriptor: &String| TaskSpecPlacementPreferences {
        spread: Some(TaskSpecPlacementSpread {
            spread_descriptor: Some(descriptor.clone()),
        }),
    };
    TaskSpecPlacement {
        constraints: Some(placement.constraints.clone()).filter(|c| !c.is_empty()),
        preferences: Some(
            placement
                .preferences
                .iter()
                .map(|p| spread(&p.spread))
                .collect(),
        )
        .filter(|p: &Vec<_>| !p.is_empty()),
        max_replicas: placement
            .max_replicas_per_node
            .and_then(|max| i64::try_from(max).ok()),
        platforms: None,
    }
}

/// The health check docker would send: a string test runs in the shell, and `disable`
/// stands for the test `NONE`.
pub fn health_check(check: &Healthcheck) -> Result<HealthConfig, String> {
    if check.disable {
        if check.test.is_some() {
            return Err("test and disable can't be set at the same time".into());
        }
        return Ok(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }
    let optional = |text: &Option<String>| text.as_deref().map(duration).transpose();
    let retries = check.retries.map(i64::try_from).transpose();
    Ok(HealthConfig {
        test: check.test.as_ref().map(|test| match test {
            Words::Line(line) => vec!["CMD-SHELL".into(), line.clone()],
            Words::List(words) => words.clone(),
        }),
        interval: optional(&check.interval)?,
        timeout: optional(&check.timeout)?,
        retries: retries.map_err(|_| "healthcheck retries out of range".to_string())?,
        start_period: optional(&check.start_period)?,
        start_interval: optional(&check.start_interval)?,
    })
}
