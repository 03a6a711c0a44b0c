//! `shoal swarm join`, printed as `docker swarm join` prints it.

use anyhow::Result;
use bollard::models::{NodeSpecAvailabilityEnum, SwarmJoinRequest};
use serde::Serialize;

use super::connect::Daemon;
use super::node_update::Availability;
use super::swarm::listen_addr;

/// Flags and argument of `swarm join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// Token for entry into the swarm.
    #[arg(long)]
    token: String,
    /// Advertised address (format: "<ip|interface>[:port]").
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]").
    #[arg(long, default_value = "0.0.0.0:2377", value_parser = listen_addr)]
    listen_addr: String,
    /// Availability of the node (the daemon makes it active if not given).
    #[arg(long, value_enum, ignore_case = true)]
    availability: Option<Availability>,
    /// A manager of the swarm to join.
    #[arg(value_name = "HOST:PORT")]
    remote: String,
}

/// Docker's join request. Bollard's model lacks `Availability` (the API's swagger leaves it
/// out, though the daemon reads it), so the body is built here with it added.
#[derive(Debug, Serialize)]
struct JoinRequest {
    #[serde(flatten)]
    request: SwarmJoinRequest,
    /// Left out unless given, as docker leaves it empty: the daemon then makes the node active.
    #[serde(rename = "Availability", skip_serializing_if = "Option::is_none")]
    availability: Option<NodeSpecAvailabilityEnum>,
}

/// Runs `swarm join`: joins, then asks the daemon which role the node got.
pub async fn join(daemon: &Daemon, args: JoinArgs) -> Result<()> {
    let request = SwarmJoinRequest {
        listen_addr: Some(args.listen_addr),
        advertise_addr: args.advertise_addr,
        remote_addrs: Some(vec![args.remote]),
        join_token: Some(args.token),
        ..Default::default()
    };
    let body = serde_json::to_vec(&JoinRequest {
        request: request.clone(),
        availability: args.availability.map(Into::into),
    })?;
    // Bollard only sends its own model, so this one request's body is swapped for ours.
    let joining = daemon.client()?.with_request_modifier(move |mut http| {
        *http.body_mut() = bollard::body_full(body.clone().into());
        http
    });
    joining.join_swarm(request).await?;
    let swarm = daemon.client()?.info().await?.swarm.unwrap_or_default();
    println!("{}", joined_as(swarm.control_available.unwrap_or(false)));
    Ok(())
}

/// Docker's report of the role the node joined as: a manager when it can control the swarm.
fn joined_as(control_available: bool) -> &'static str {
    if control_available {
        "This node joined a swarm as a manager."
    } else {
        "This node joined a swarm as a worker."
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(line: &[&str]) -> JoinArgs {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: JoinArgs,
        }
        let line = std::iter::once("join").chain(line.iter().copied());
        Command::try_parse_from(line).unwrap().args
    }

    #[test]
    fn the_message_follows_control_availability() {
        assert_eq!(joined_as(true), "This node joined a swarm as a manager.");
        assert_eq!(joined_as(false), "This node joined a swarm as a worker.");
    }

    #[test]
    fn the_body_is_docker_join_request_with_availability_only_when_given() {
        let request = SwarmJoinRequest {
            listen_addr: Some("0.0.0.0:2377".into()),
            remote_addrs: Some(vec!["10.0.0.1:2377".into()]),
            join_token: Some("SWMTKN-1-x".into()),
            ..Default::default()
        };
        let body = |availability| {
            let request = request.clone();
            serde_json::to_value(JoinRequest {
                request,
                availability,
            })
            .unwrap()
        };
        assert_eq!(
            body(Some(NodeSpecAvailabilityEnum::DRAIN)),
            serde_json::json!({
                "ListenAddr": "0.0.0.0:2377",
                "RemoteAddrs": ["10.0.0.1:2377"],
                "JoinToken": "SWMTKN-1-x",
                "Availability": "drain",
            })
        );
        assert_eq!(body(None).get("Availability"), None);
    }

    #[test]
    fn flags_complete_the_listen_address_and_take_any_case_of_availability() {
        let args = parse(&[
            "--token",
            "T",
            "--listen-addr",
            "eth0",
            "--availability",
            "Pause",
            "10.0.0.1:2377",
        ]);
        assert_eq!(args.listen_addr, "eth0:2377");
        assert_eq!(args.availability, Some(Availability::Pause));
        assert_eq!(args.remote, "10.0.0.1:2377");
        let defaults = parse(&["--token", "T", "m:2377"]);
        assert_eq!(defaults.listen_addr, "0.0.0.0:2377");
        assert_eq!(defaults.availability, None);
    }
}
