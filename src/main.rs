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
    /// Supervise one task of the process executor (the daemon starts these).
    #[command(hide = true)]
    Shim(shoal::exec::shim::ShimArgs),
    #[command(flatten)]
    Client(shoal::cli::ClientCommand),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        // No runtime for the shim: it forks and unshares namespaces, which needs a single thread.
        Command::Shim(args) => shoal::exec::shim::run(args),
        Command::Daemon(args) => {
            init_logging();
            match runtime().block_on(shoal::daemon::run(args)) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e:#}");
                    1
                }
            }
        }
        Command::Client(command) => runtime().block_on(shoal::cli::run(&cli.host, command)),
    };
    std::process::exit(code);
}

/// The multi-threaded runtime `#[tokio::main]` would build.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("starting the async runtime")
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
