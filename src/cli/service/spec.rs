//! The flags `service create` and `service update` share, and how they change a service's
//! spec. Each flag given replaces its setting and the others stay, as with docker, so the
//! same code finishes a new spec and edits an existing one.

use std::collections::HashMap;

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum as FailureAction,
    ServiceSpecUpdateConfigOrderEnum as Order, TaskSpec, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum as Condition,
};
use bollard::query_parameters::InspectNetworkOptions;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::parse::{self, Words, api_enum};
use super::progress::WaitFlags;
use crate::cli::duration::parse_go_duration;

/// Nanoseconds in a second, the unit of the API's durations being the nanosecond.
const SECOND: i64 = 1_000_000_000;

/// The ways a service runs its tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A given number of tasks, placed by the scheduler.
    #[default]
    Replicated,
    /// One task on every node that can run it.
    Global,
}

impl From<Mode> for ServiceSpecMode {
    /// The mode as docker sends it: replicated without a count unless `--replicas` adds one.
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Replicated => ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated::default()),
                ..Default::default()
            },
            Mode::Global => ServiceSpecMode {
                global: Some(HashMap::new()),
                ..Default::default()
            },
        }
    }
}

/// The flags of both `service create` and `service update`.
#[derive(Debug, clap::Args)]
pub struct ServiceFlags {
    /// Whether and how to wait for the service to converge.
    #[command(flatten)]
    pub wait: WaitFlags,
    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// Container hostname.
    #[arg(long)]
    hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long, value_name = "COMMAND", value_parser = parse::shell_words)]
    entrypoint: Option<Words>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h) (default 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    stop_grace_period: Option<i64>,
    /// Number of tasks.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    replicas: Option<i64>,
    /// Maximum number of tasks per node (default 0 = unlimited).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    replicas_max_per_node: Option<i64>,
    #[command(flatten)]
    resources: ResourceFlags,
    #[command(flatten)]
    restart: RestartFlags,
    #[command(flatten)]
    update: UpdateFlags,
    #[command(flatten)]
    rollback: RollbackFlags,
}

/// The CPU and memory a task may use and is guaranteed.
#[derive(Debug, Default, PartialEq, Eq, clap::Args)]
struct ResourceFlags {
    /// Limit CPUs.
    #[arg(long, value_name = "DECIMAL", value_parser = parse::nano_cpus)]
    limit_cpu: Option<i64>,
    /// Limit Memory.
    #[arg(long, value_name = "BYTES", value_parser = parse::ram_bytes)]
    limit_memory: Option<i64>,
    /// Reserve CPUs.
    #[arg(long, value_name = "DECIMAL", value_parser = parse::nano_cpus)]
    reserve_cpu: Option<i64>,
    /// Reserve Memory.
    #[arg(long, value_name = "BYTES", value_parser = parse::ram_bytes)]
    reserve_memory: Option<i64>,
}

/// When a task that stopped is replaced.
#[derive(Debug, Default, PartialEq, Eq, clap::Args)]
struct RestartFlags {
    /// Restart when condition is met (default "any").
    #[arg(long, value_name = "CONDITION",
          value_parser = api_enum::<Condition>(&["none", "on-failure", "any"]))]
    restart_condition: Option<Condition>,
    /// Delay between restart attempts (ns|us|ms|s|m|h) (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    restart_delay: Option<i64>,
    /// Maximum number of restarts before giving up.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    restart_max_attempts: Option<i64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    restart_window: Option<i64>,
}

/// How an update rolls out over the tasks.
#[derive(Debug, clap::Args)]
struct UpdateFlags {
    /// Maximum number of tasks updated simultaneously (0 to update all at once) (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    update_parallelism: Option<i64>,
    /// Delay between updates (ns|us|ms|s|m|h) (default 0s).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    update_delay: Option<i64>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h) (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    update_monitor: Option<i64>,
    /// Action on update failure (default "pause").
    #[arg(long, value_name = "ACTION",
          value_parser = api_enum::<FailureAction>(&["pause", "continue", "rollback"]))]
    update_failure_action: Option<FailureAction>,
    /// Failure rate to tolerate during an update (default 0).
    #[arg(long, value_name = "RATIO")]
    update_max_failure_ratio: Option<f64>,
    /// Update order (default "stop-first").
    #[arg(long, value_name = "ORDER",
          value_parser = api_enum::<Order>(&["start-first", "stop-first"]))]
    update_order: Option<Order>,
}

/// How a rollback rolls out over the tasks.
#[derive(Debug, clap::Args)]
struct RollbackFlags {
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once)
    /// (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    rollback_parallelism: Option<i64>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h) (default 0s).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    rollback_delay: Option<i64>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)
    /// (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    rollback_monitor: Option<i64>,
    /// Action on rollback failure (default "pause").
    #[arg(long, value_name = "ACTION",
          value_parser = api_enum::<FailureAction>(&["pause", "continue"]))]
    rollback_failure_action: Option<FailureAction>,
    /// Failure rate to tolerate during a rollback (default 0).
    #[arg(long, value_name = "RATIO")]
    rollback_max_failure_ratio: Option<f64>,
    /// Rollback order (default "stop-first").
    #[arg(long, value_name = "ORDER",
          value_parser = api_enum::<Order>(&["start-first", "stop-first"]))]
    rollback_order: Option<Order>,
}

/// One rollout policy's settings; update and rollback policies have the same fields.
#[derive(Default, PartialEq)]
struct Rollout {
    parallelism: Option<i64>,
    delay: Option<i64>,
    monitor: Option<i64>,
    failure_action: Option<FailureAction>,
    max_failure_ratio: Option<f64>,
    order: Option<Order>,
}

impl ServiceFlags {
    /// Writes the flags given into `spec`.
    pub fn apply(&self, spec: &mut ServiceSpec) -> Result<()> {
        let global = spec.mode.as_ref().is_some_and(|m| m.global.is_some());
        if let Some(replicas) = self.replicas {
            let Some(replicated) = replicated(spec) else {
                bail!("replicas can only be used with replicated mode");
            };
            replicated.replicas = Some(replicas);
        }
        let task = spec.task_template.get_or_insert_default();
        if let Some(max) = self.replicas_max_per_node {
            if global && max > 0 {
                let modes = "replicated or replicated-job mode";
                bail!("replicas-max-per-node can only be used with {modes}");
            }
            task.placement.get_or_insert_default().max_replicas = Some(max);
        }
        let container = task.container_spec.get_or_insert_default();
        replace(&mut container.dir, self.workdir.as_ref());
        replace(&mut container.hostname, self.hostname.as_ref());
        replace(
            &mut container.command,
            self.entrypoint.as_ref().map(|w| &w.0),
        );
        replace(
            &mut container.stop_grace_period,
            self.stop_grace_period.as_ref(),
        );
        self.resources.apply(task);
        self.restart.apply(task);
        spec.update_config = self.update.rollout().applied_to(spec.update_config.take());
        let rollback = spec.rollback_config.take().map(recast).transpose()?;
        let rollback = self.rollback.rollout().applied_to(rollback);
        spec.rollback_config = rollback.map(recast).transpose()?;
        Ok(())
    }
}

impl ResourceFlags {
    /// Sets the limits and reservations given; like docker, giving any of them makes sure
    /// the spec has both.
    fn apply(&self, task: &mut TaskSpec) {
        if *self == Self::default() {
            return;
        }
        let resources = task.resources.get_or_insert_default();
        let limits = resources.limits.get_or_insert_default();
        replace(&mut limits.nano_cpus, self.limit_cpu.as_ref());
        replace(&mut limits.memory_bytes, self.limit_memory.as_ref());
        let reservations = resources.reservations.get_or_insert_default();
        replace(&mut reservations.nano_cpus, self.reserve_cpu.as_ref());
        replace(&mut reservations.memory_bytes, self.reserve_memory.as_ref());
    }
}

impl RestartFlags {
    /// Sets the restart settings given, over swarmkit's defaults when the spec has no policy:
    /// restart on any exit, 5s apart, without limit.
    fn apply(&self, task: &mut TaskSpec) {
        if *self == Self::default() {
            return;
        }
        let policy = task.restart_policy.get_or_insert(TaskSpecRestartPolicy {
            condition: Some(Condition::ANY),
            delay: Some(5 * SECOND),
            max_attempts: Some(0),
            window: None,
        });
        replace(&mut policy.condition, self.restart_condition.as_ref());
        replace(&mut policy.delay, self.restart_delay.as_ref());
        replace(&mut policy.max_attempts, self.restart_max_attempts.as_ref());
        replace(&mut policy.window, self.restart_window.as_ref());
    }
}

impl UpdateFlags {
    fn rollout(&self) -> Rollout {
        Rollout {
            parallelism: self.update_parallelism,
            delay: self.update_delay,
            monitor: self.update_monitor,
            failure_action: self.update_failure_action,
            max_failure_ratio: self.update_max_failure_ratio,
            order: self.update_order,
        }
    }
}

impl RollbackFlags {
    fn rollout(&self) -> Rollout {
        Rollout {
            parallelism: self.rollback_parallelism,
            delay: self.rollback_delay,
            monitor: self.rollback_monitor,
            failure_action: self.rollback_failure_action,
            max_failure_ratio: self.rollback_max_failure_ratio,
            order: self.rollback_order,
        }
    }
}

impl Rollout {
    /// `config` with the settings given, over swarmkit's defaults when there is no policy
    /// yet (one task at a time, watched for 5s, pausing on failure, stopping the old task
    /// first); left as it is, possibly absent, when no setting is given.
    fn applied_to(
        &self,
        config: Option<ServiceSpecUpdateConfig>,
    ) -> Option<ServiceSpecUpdateConfig> {
        if *self == Self::default() {
            return config;
        }
        let mut config = config.unwrap_or(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: None,
            failure_action: Some(FailureAction::PAUSE),
            monitor: Some(5 * SECOND),
            max_failure_ratio: Some(0.0),
            order: Some(Order::STOP_FIRST),
        });
        replace(&mut config.parallelism, self.parallelism.as_ref());
        replace(&mut config.delay, self.delay.as_ref());
        replace(&mut config.monitor, self.monitor.as_ref());
        replace(&mut config.failure_action, self.failure_action.as_ref());
        replace(
            &mut config.max_failure_ratio,
            self.max_failure_ratio.as_ref(),
        );
        replace(&mut config.order, self.order.as_ref());
        Some(config)
    }
}

/// A rollback policy as an update policy or back: bollard gives the two their own types,
/// but the API the same fields.
pub fn recast<A: Serialize, B: DeserializeOwned>(config: A) -> Result<B> {
    Ok(serde_json::from_value(serde_json::to_value(config)?)?)
}

/// Overwrites `field` with the value of a flag, when the flag was given.
fn replace<T: Clone>(field: &mut Option<T>, value: Option<&T>) {
    if let Some(value) = value {
        *field = Some(value.clone());
    }
}

/// The replicated mode of `spec`, which `--replicas` and `scale` change.
pub fn replicated(spec: &mut ServiceSpec) -> Option<&mut ServiceSpecModeReplicated> {
    spec.mode.as_mut().and_then(|mode| mode.replicated.as_mut())
}

/// `items`, or nothing for none: docker leaves empty lists out of the specs it sends.
pub fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// Adds `KEY=VALUE` variables to `env`, each replacing any variable of the same name.
pub fn add_env(env: &mut Vec<String>, added: &[String]) {
    for variable in added {
        let key = env_key(variable);
        env.retain(|current| env_key(current) != key);
        env.push(variable.clone());
    }
}

/// The name of a `KEY=VALUE` variable.
pub fn env_key(variable: &str) -> &str {
    variable.split_once('=').map_or(variable, |(key, _)| key)
}

/// `KEY=VALUE` (or `KEY`, for an empty value) pairs as a map, later keys winning.
pub fn key_values(pairs: &[String]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The attachments the `--network` values `values` ask for (see [`parse::network`]), each
/// network (an ID, ID prefix or name) resolved to its ID, sorted by them, as docker attaches a
/// service.
pub async fn networks(docker: &Docker, values: &[String]) -> Result<Vec<NetworkAttachmentConfig>> {
    let mut attachments = Vec::new();
    for value in values {
        let mut attachment = super::parse::network(value).map_err(anyhow::Error::msg)?;
        let options = InspectNetworkOptions {
            scope: Some("swarm".into()),
            ..Default::default()
        };
        let name = attachment.target.take().unwrap_or_default();
        let network = docker.inspect_network(&name, Some(options)).await?;
        attachment.target = network.id;
        attachments.push(attachment);
    }
    attachments.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(attachments)
}

#[cfg(test)]
mod tests {
    use bollard::models::ServiceSpecRollbackConfig;

    use super::*;

    #[test]
    fn a_later_variable_replaces_an_earlier_one_at_the_end() {
        let mut env = vec!["A=1".to_string(), "B=2".into(), "C".into()];
        add_env(&mut env, &["A=3".into(), "C=4".into(), "D=".into()]);
        assert_eq!(env, ["B=2", "A=3", "C=4", "D="]);
        assert_eq!(env_key("A=b=c"), "A");
        assert_eq!(env_key("A"), "A");
    }

    #[test]
    fn key_values_take_bare_keys_as_empty() {
        let labels = key_values(&["a=1".into(), "b".into(), "a=2=3".into()]);
        assert_eq!(
            labels,
            HashMap::from([("a".into(), "2=3".into()), ("b".into(), "".into())])
        );
    }

    #[test]
    fn policies_recast_between_update_and_rollback_unchanged() {
        let update = ServiceSpecUpdateConfig {
            parallelism: Some(2),
            failure_action: Some(FailureAction::CONTINUE),
            order: Some(Order::START_FIRST),
            ..Default::default()
        };
        let rollback: ServiceSpecRollbackConfig = recast(update.clone()).unwrap();
        assert_eq!(rollback.parallelism, Some(2));
        let back: ServiceSpecUpdateConfig = recast(rollback).unwrap();
        assert_eq!(back, update);
        // Only an update can fail into a rollback.
        let rolling = ServiceSpecUpdateConfig {
            failure_action: Some(FailureAction::ROLLBACK),
            ..Default::default()
        };
        assert!(recast::<_, ServiceSpecRollbackConfig>(rolling).is_err());
    }
}
