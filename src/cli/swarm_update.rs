//! `shoal swarm update`, and the read-modify-write of the swarm's spec it shares with
//! `swarm join-token --rotate`.

use anyhow::Result;
use bollard::Docker;
use bollard::models::SwarmSpec;
use bollard::query_parameters::UpdateSwarmOptions;

use super::duration::parse_go_duration;
use super::update_version;

/// Flags of `swarm update`; each one given replaces that setting, the others stay.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Validity period for node certificates (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    cert_expiry: Option<i64>,
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    dispatcher_heartbeat: Option<i64>,
    /// Task history retention limit.
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    task_history_limit: Option<i64>,
}

/// Runs `swarm update`.
pub async fn update(docker: &Docker, args: &UpdateArgs) -> Result<()> {
    let edit = |spec: &mut SwarmSpec| apply(args, spec);
    update_swarm(docker, UpdateSwarmOptions::default(), edit).await?;
    println!("Swarm updated.");
    Ok(())
}

/// Reads the swarm, lets `edit` change its spec, and writes the spec back at the version
/// read, with the token rotations `flags` asks for (its own version is ignored).
pub async fn update_swarm(
    docker: &Docker,
    flags: UpdateSwarmOptions,
    edit: impl FnOnce(&mut SwarmSpec),
) -> Result<()> {
    let swarm = docker.inspect_swarm().await?;
    let mut spec = swarm.spec.unwrap_or_default();
    edit(&mut spec);
    let options = UpdateSwarmOptions {
        version: update_version(swarm.version.as_ref())?,
        ..flags
    };
    docker.update_swarm(spec, options).await?;
    Ok(())
}

/// Writes the settings `args` gives into `spec`; durations are in nanoseconds, as the API
/// (Go's `time.Duration`) counts them.
fn apply(args: &UpdateArgs, spec: &mut SwarmSpec) {
    if let Some(expiry) = args.cert_expiry {
        spec.ca_config.get_or_insert_default().node_cert_expiry = Some(expiry);
    }
    if let Some(period) = args.dispatcher_heartbeat {
        spec.dispatcher.get_or_insert_default().heartbeat_period = Some(period);
    }
    if let Some(limit) = args.task_history_limit {
        let orchestration = spec.orchestration.get_or_insert_default();
        orchestration.task_history_retention_limit = Some(limit);
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{SwarmSpecCaConfig, SwarmSpecDispatcher, SwarmSpecOrchestration};
    use clap::Parser as _;

    use super::*;

    /// `swarm update`'s flags parsed from `line`, as the binary parses them.
    fn try_parse(line: &[&str]) -> Result<UpdateArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: UpdateArgs,
        }
        let line = std::iter::once("update").chain(line.iter().copied());
        Command::try_parse_from(line).map(|command| command.args)
    }

    fn parse(line: &[&str]) -> UpdateArgs {
        try_parse(line).unwrap()
    }

    fn current_spec() -> SwarmSpec {
        SwarmSpec {
            name: Some("default".into()),
            ca_config: Some(SwarmSpecCaConfig {
                node_cert_expiry: Some(7_776_000_000_000_000),
                ..Default::default()
            }),
            dispatcher: Some(SwarmSpecDispatcher {
                heartbeat_period: Some(5_000_000_000),
            }),
            orchestration: Some(SwarmSpecOrchestration {
                task_history_retention_limit: Some(5),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn flags_replace_their_setting_in_nanoseconds() {
        let mut spec = current_spec();
        apply(
            &parse(&[
                "--cert-expiry",
                "720h",
                "--dispatcher-heartbeat",
                "1m30s",
                "--task-history-limit",
                "-1",
            ]),
            &mut spec,
        );
        let ca = spec.ca_config.unwrap();
        assert_eq!(ca.node_cert_expiry, Some(720 * 3_600 * 1_000_000_000));
        let dispatcher = spec.dispatcher.unwrap();
        assert_eq!(dispatcher.heartbeat_period, Some(90_000_000_000));
        let orchestration = spec.orchestration.unwrap();
        assert_eq!(orchestration.task_history_retention_limit, Some(-1));
        assert_eq!(spec.name.as_deref(), Some("default"));
    }

    #[test]
    fn settings_not_given_stay_as_they_were() {
        let mut spec = current_spec();
        apply(&parse(&["--dispatcher-heartbeat", "10s"]), &mut spec);
        let mut expected = current_spec();
        expected.dispatcher = Some(SwarmSpecDispatcher {
            heartbeat_period: Some(10_000_000_000),
        });
        assert_eq!(spec, expected);

        let mut empty = SwarmSpec::default();
        apply(&parse(&["--task-history-limit", "7"]), &mut empty);
        assert_eq!(
            empty.orchestration.unwrap().task_history_retention_limit,
            Some(7)
        );
        assert_eq!(empty.ca_config, None);
    }

    #[test]
    fn durations_are_read_as_go_reads_them() {
        let error = try_parse(&["--cert-expiry", "90d"])
            .unwrap_err()
            .to_string();
        let reason = "time: unknown unit \"d\" in duration \"90d\"";
        assert!(error.contains(reason), "{error}");
        let expiry = parse(&["--cert-expiry", "2160h0m0s"]).cert_expiry;
        assert_eq!(expiry, Some(2_160 * 3_600 * 1_000_000_000));
    }
}
