//! The `shoal` client commands, speaking the Docker Engine API through bollard.
//!
//! Each command mirrors the docker CLI: same verbs, flags and output, so scripts and habits
//! carry over. One file per command group (split where it grows long, `service` into a
//! directory of its own); `table`, `text` and `inspect` hold the formatting they share,
//! `duration` the Go durations docker's flags take.

mod connect;
pub(crate) mod duration;
mod inspect;
mod network;
mod node;
mod node_pretty;
mod node_update;
pub(crate) mod service;
mod stack;
mod swarm;
mod swarm_join;
mod swarm_update;
mod system;
mod table;
mod text;

pub use network::NetworkCommand;
pub use node::NodeCommand;
pub use service::ServiceCommand;
pub use stack::StackCommand;
pub use swarm::SwarmCommand;

use anyhow::anyhow;
use bollard::models::ObjectVersion;
use connect::Daemon;

/// The client commands, meant to be flattened into the binary's top-level subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Show the shoal version information.
    Version,
    /// Display system-wide information.
    Info,
    /// Manage the swarm.
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Manage swarm nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Manage swarm networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage swarm services.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Manage swarm stacks.
    #[command(subcommand)]
    Stack(StackCommand),
}

/// Runs `command` against the daemon at `host` (`unix:///path/to/socket` or a bare socket
/// path), printing its output on stdout and, on failure, docker's error line on stderr.
///
/// Returns the process exit code: 0 on success, 1 on any failure (as docker exits).
pub async fn run(host: &str, command: ClientCommand) -> i32 {
    let daemon = match Daemon::at(host) {
        Ok(daemon) => daemon,
        Err(error) => {
            eprintln!("{error}");
            return 1;
        }
    };
    let outcome = match command {
        ClientCommand::Version => system::version(&daemon).await,
        ClientCommand::Info => system::info(&daemon).await,
        ClientCommand::Swarm(command) => swarm::run(&daemon, command).await,
        ClientCommand::Network(command) => network::run(&daemon, command).await,
        ClientCommand::Node(command) => node::run(&daemon, command).await,
        ClientCommand::Service(command) => service::run(&daemon, command).await,
        ClientCommand::Stack(command) => stack::run(&daemon, command).await,
    };
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("{}", daemon.explain(&error));
            1
        }
    }
}

/// The `version` query parameter for writing back an object read at `version`: the daemon
/// refuses the update if the object changed since, rather than losing the other change.
/// (Bollard types it per object: `i64` for nodes and the swarm, `i32` for services.)
fn update_version<T: TryFrom<u64>>(version: Option<&ObjectVersion>) -> anyhow::Result<T> {
    let index = version.and_then(|v| v.index).unwrap_or(0);
    T::try_from(index).map_err(|_| anyhow!("object version {index} out of range"))
}
