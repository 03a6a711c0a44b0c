//! The `shoal` binary: the per-host daemon and the docker-style client.

use clap::{Parser, Subcommand};

/// shoal: a Docker-Swarm-compatible cluster with a userspace data plane.
#[derive(Parser)]
#[command(name = "shoal", version, about)]
struct Cli {
    /// Daemon socket to talk to.
    #[arg(
        short = 'H',
        long = "host",
        env = "SHOAL_HOST",
        global = true,
        default_value = "unix:///run/shoal/shoal.sock"
    )]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the shoal daemon.
    Daemon(shoal::daemon::DaemonArgs),
    #[command(flatten)]
    Client(shoal::cli::ClientCommand),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Daemon(args) => {
            init_logging();
            match shoal::daemon::run(args).await {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e:#}");
                    1
                }
            }
        }
        Command::Client(command) => shoal::cli::run(&cli.host, command).await,
    };
    std::process::exit(code);
}

/// Structured logs to stderr, filtered by `RUST_LOG` (default: info for shoal, warn otherwise).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,shoal=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
