//! `shoal stack rm`: a stack's services, then its networks, removed as docker removes them.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::errors::Error as ApiError;

use super::{service_name, stack_networks, stack_services};
use crate::cli::connect::Daemon;
use crate::cli::text::natural_cmp;

/// The stacks `stack rm` removes.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The stacks' names.
    #[arg(required = true, value_name = "STACK")]
    stacks: Vec<String>,
}

/// Runs `stack rm`: removes what it can of each stack, reporting each failure on stderr,
/// then fails naming the stacks not wholly removed.
pub async fn remove(daemon: &Daemon, docker: &Docker, args: &RemoveArgs) -> Result<()> {
    let mut failed = Vec::new();
    for stack in &args.stacks {
        let mut services = stack_services(docker, stack).await?;
        let mut networks = stack_networks(docker, stack).await?;
        if services.is_empty() && networks.is_empty() {
            eprintln!("Nothing found in stack: {stack}");
            continue;
        }
        services.sort_by(|a, b| natural_cmp(service_name(a), service_name(b)));
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let services = services
            .iter()
            .map(|s| (Kind::Service, service_name(s), s.id.as_deref()));
        let networks = networks.iter().map(|n| {
            let name = n.name.as_deref().unwrap_or_default();
            (Kind::Network, name, n.id.as_deref())
        });
        let mut complete = true;
        // Services first: a network goes once no service is attached to it.
        for (kind, name, id) in services.chain(networks) {
            println!("Removing {kind} {name}");
            let id = id.unwrap_or(name);
            let removed = match kind {
                Kind::Service => docker.delete_service(id).await,
                Kind::Network => remove_network(docker, id).await,
            };
            if let Err(error) = removed {
                let reason = daemon.explain(&error.into());
                eprintln!("Failed to remove {kind} {id}: {reason}");
                complete = false;
            }
        }
        if !complete {
            failed.push(format!(
                "Failed to remove some resources from stack: {stack}"
            ));
        }
    }
    if !failed.is_empty() {
        bail!(failed.join("\n"));
    }
    Ok(())
}

/// How long a network may stay in use by the tasks of the services just removed.
const IN_USE_WAIT: Duration = Duration::from_secs(30);

/// How often to try again meanwhile.
const IN_USE_RETRY: Duration = Duration::from_millis(250);

/// Removes the network `id`, waiting for the tasks of the services just removed to let go
/// of it: their removal takes a moment after their service's, and docker's `stack rm`, which
/// does not wait, often fails here with "network is in use".
async fn remove_network(docker: &Docker, id: &str) -> Result<(), ApiError> {
    let deadline = Instant::now() + IN_USE_WAIT;
    loop {
        match docker.remove_network(id).await {
            Err(ApiError::DockerResponseServerError { message, .. })
                if message.contains("in use") && Instant::now() < deadline =>
            {
                tokio::time::sleep(IN_USE_RETRY).await;
            }
            outcome => return outcome,
        }
    }
}

/// The kinds of object a stack is made of, as docker's messages name them.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Service,
    Network,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Service => "service",
            Self::Network => "network",
        })
    }
}
