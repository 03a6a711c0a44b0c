//! The `shoal` client commands, speaking the Docker Engine API through bollard.
//!
//! Each command mirrors the docker CLI: same verbs, flags and output, so scripts and habits
//! carry over. One file per command group; `table` and `text` hold the formatting they share.

mod connect;
mod node;
mod node_pretty;
mod swarm;
mod system;
mod table;
mod text;

pub use node::NodeCommand;
pub use swarm::SwarmCommand;

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
        ClientCommand::Node(command) => node::run(&daemon, command).await,
    };
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("{}", daemon.explain(&error));
            1
        }
    }
}
