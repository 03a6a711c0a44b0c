//! The `shoal` binary. This branch's main only wires the client commands, so they can be
//! tried; the daemon's main adds `shoal daemon` beside them.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "A Docker-Swarm-compatible container cluster"
)]
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

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Client(shoal::cli::ClientCommand),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Client(command) => shoal::cli::run(&cli.host, command).await,
    };
    std::process::exit(code);
}
