//! `shoal swarm init|join-token|leave`, printed as `docker swarm ...` prints them;
//! `join` and `update` have their own files.

use std::fmt;
use std::net::IpAddr;

use anyhow::Result;
use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::models::{JoinTokens, NodeSpecRoleEnum, SwarmInitRequest};
use bollard::query_parameters::{LeaveSwarmOptions, UpdateSwarmOptions};

use super::connect::Daemon;
use super::swarm_join::{self, JoinArgs};
use super::swarm_update::{self, UpdateArgs, update_swarm};

/// The swarm management port, which docker adds to listen addresses given without one.
const SWARM_PORT: u16 = 2377;

/// Docker's swarm subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm.
    Init(InitArgs),
    /// Join a swarm as a node and/or manager.
    Join(JoinArgs),
    /// Manage join tokens.
    JoinToken(JoinTokenArgs),
    /// Leave the swarm.
    Leave(LeaveArgs),
    /// Update the swarm.
    // Docker prints its help when given no flag: there is nothing to update.
    #[command(arg_required_else_help = true)]
    Update(UpdateArgs),
}

/// Flags of `swarm init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Advertised address (format: "<ip|interface>[:port]").
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]").
    #[arg(long, default_value = "0.0.0.0:2377", value_parser = listen_addr)]
    listen_addr: String,
    /// Default address pool in CIDR format (repeatable, or comma-separated).
    #[arg(long, value_parser = network_cidr, value_delimiter = ',')]
    default_addr_pool: Vec<String>,
    /// Default address pool subnet mask length.
    #[arg(long, default_value_t = 24)]
    default_addr_pool_mask_length: u32,
    /// Port number to use for data path traffic (1024 - 49151). If no value is set or is
    /// set to 0, the default port (4789) is used.
    #[arg(long)]
    data_path_port: Option<u32>,
}

/// Flags and argument of `swarm join-token`.
#[derive(Debug, clap::Args)]
pub struct JoinTokenArgs {
    /// Rotate join token.
    #[arg(long)]
    rotate: bool,
    /// Only display token.
    #[arg(short, long)]
    quiet: bool,
    /// Which token: the one that joins workers or the one that joins managers.
    #[arg(value_enum)]
    role: Role,
}

/// Flags of `swarm leave`.
#[derive(Debug, clap::Args)]
pub struct LeaveArgs {
    /// Force this node to leave the swarm, ignoring warnings.
    #[arg(short, long)]
    force: bool,
}

/// A node's role in the swarm, as flags name it; also the role a join token admits a node as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Runs tasks.
    Worker,
    /// Runs tasks and takes part in managing the swarm.
    Manager,
}

impl Role {
    /// This role's token among the swarm's join tokens.
    fn token(self, tokens: JoinTokens) -> String {
        match self {
            Role::Worker => tokens.worker,
            Role::Manager => tokens.manager,
        }
        .unwrap_or_default()
    }
}

impl From<Role> for NodeSpecRoleEnum {
    fn from(role: Role) -> Self {
        match role {
            Role::Worker => NodeSpecRoleEnum::WORKER,
            Role::Manager => NodeSpecRoleEnum::MANAGER,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        })
    }
}

/// Runs a swarm subcommand.
pub async fn run(daemon: &Daemon, command: SwarmCommand) -> Result<()> {
    let docker = daemon.client()?;
    match command {
        SwarmCommand::Init(args) => init(&docker, args).await,
        SwarmCommand::Join(args) => swarm_join::join(daemon, args).await,
        SwarmCommand::JoinToken(args) => join_token(&docker, &args).await,
        SwarmCommand::Leave(args) => {
            let options = LeaveSwarmOptions { force: args.force };
            docker.leave_swarm(Some(options)).await?;
            println!("Node left the swarm.");
            Ok(())
        }
        SwarmCommand::Update(args) => swarm_update::update(&docker, &args).await,
    }
}

async fn init(docker: &Docker, args: InitArgs) -> Result<()> {
    let request = SwarmInitRequest {
        listen_addr: Some(args.listen_addr),
        advertise_addr: args.advertise_addr,
        data_path_port: args.data_path_port,
        default_addr_pool: Some(args.default_addr_pool).filter(|pools| !pools.is_empty()),
        subnet_size: Some(args.default_addr_pool_mask_length),
        ..Default::default()
    };
    let node_id = docker.init_swarm(request).await.map_err(advertise_hint)?;
    println!("Swarm initialized: current node ({node_id}) is now a manager.\n");
    print_join_command(docker, &node_id, Role::Worker).await?;
    println!(
        "To add a manager to this swarm, run 'docker swarm join-token manager' \
         and follow the instructions.\n"
    );
    Ok(())
}

/// Adds docker's hint to the daemon's "no address to advertise" errors.
fn advertise_hint(error: ApiError) -> ApiError {
    match error {
        ApiError::DockerResponseServerError {
            status_code,
            message,
        } if message.contains("could not choose an IP address to advertise")
            || message.contains("could not find the system's IP address") =>
        {
            let message = format!("{message} - specify one with --advertise-addr");
            ApiError::DockerResponseServerError {
                status_code,
                message,
            }
        }
        other => other,
    }
}

async fn join_token(docker: &Docker, args: &JoinTokenArgs) -> Result<()> {
    if args.rotate {
        let rotation = UpdateSwarmOptions {
            rotate_worker_token: args.role == Role::Worker,
            rotate_manager_token: args.role == Role::Manager,
            ..Default::default()
        };
        update_swarm(docker, rotation, |_| ()).await?;
        if !args.quiet {
            print!("{}", rotated(args.role));
        }
    }
    // The swarm is read after the rotation, so what follows shows the new token.
    if args.quiet {
        let tokens = docker
            .inspect_swarm()
            .await?
            .join_tokens
            .unwrap_or_default();
        println!("{}", args.role.token(tokens));
        return Ok(());
    }
    let swarm = docker.info().await?.swarm.unwrap_or_default();
    print_join_command(docker, &swarm.node_id.unwrap_or_default(), args.role).await
}

/// Prints how to join as `role` through the manager `node_id`, as docker does: with the
/// manager's own address, and nothing when that node is not a manager.
async fn print_join_command(docker: &Docker, node_id: &str, role: Role) -> Result<()> {
    let node = docker.inspect_node(node_id).await?;
    let tokens = docker
        .inspect_swarm()
        .await?
        .join_tokens
        .unwrap_or_default();
    if let Some(manager) = node.manager_status {
        let address = manager.addr.unwrap_or_default();
        print!("{}", join_instructions(role, &role.token(tokens), &address));
    }
    Ok(())
}

/// Docker's confirmation of a token rotation, which precedes the new join instructions.
fn rotated(role: Role) -> String {
    format!("Successfully rotated {role} join token.\n\n")
}

/// Docker's instructions for joining the swarm as `role`.
fn join_instructions(role: Role, token: &str, manager_addr: &str) -> String {
    format!(
        "To add a {role} to this swarm, run the following command:\n\n    \
         docker swarm join --token {token} {manager_addr}\n\n"
    )
}

/// A `--listen-addr` completed the way docker completes it: a missing host becomes
/// `0.0.0.0` and a missing port the swarm port (`eth0` -> `eth0:2377`, `:4000` -> `0.0.0.0:4000`).
pub fn listen_addr(value: &str) -> Result<String, String> {
    let value = value.strip_prefix("tcp://").unwrap_or(value);
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("missing ']' after IPv6 address")?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else if value.matches(':').count() > 1 {
        // A bare IPv6 address: its colons are not a port separator.
        (format!("[{value}]"), None)
    } else {
        let (host, port) = value
            .split_once(':')
            .map_or((value, None), |(h, p)| (h, Some(p)));
        (host.to_string(), port)
    };
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| format!("invalid port {port:?}"))?,
        None => SWARM_PORT,
    };
    Ok(format!("{host}:{port}"))
}

/// A CIDR as its network, the way Go's `net.ParseCIDR` hands it to docker
/// (`10.10.1.5/16` -> `10.10.0.0/16`).
fn network_cidr(value: &str) -> Result<String, String> {
    let invalid = || format!("invalid CIDR address: {value}");
    let (address, prefix) = value.split_once('/').ok_or_else(invalid)?;
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let prefix: u32 = prefix.parse().map_err(|_| invalid())?;
    let network = match address {
        IpAddr::V4(v4) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
        _ => return Err(invalid()),
    };
    Ok(format!("{network}/{prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_instructions_match_docker_text() {
        assert_eq!(
            join_instructions(Role::Worker, "SWMTKN-1-abc-def", "10.0.0.1:2377"),
            "To add a worker to this swarm, run the following command:\n\
             \n    docker swarm join --token SWMTKN-1-abc-def 10.0.0.1:2377\n\n"
        );
        assert!(
            join_instructions(Role::Manager, "T", "A")
                .starts_with("To add a manager to this swarm, run the following command:\n")
        );
    }

    #[test]
    fn rotation_is_confirmed_before_the_instructions() {
        assert_eq!(
            rotated(Role::Worker),
            "Successfully rotated worker join token.\n\n"
        );
        assert_eq!(
            rotated(Role::Manager),
            "Successfully rotated manager join token.\n\n"
        );
    }

    #[test]
    fn role_flags_name_the_api_roles() {
        assert_eq!(
            NodeSpecRoleEnum::from(Role::Manager),
            NodeSpecRoleEnum::MANAGER
        );
        assert_eq!(
            NodeSpecRoleEnum::from(Role::Worker),
            NodeSpecRoleEnum::WORKER
        );
    }

    #[test]
    fn listen_addr_fills_in_docker_defaults() {
        assert_eq!(listen_addr("0.0.0.0:2377").unwrap(), "0.0.0.0:2377");
        assert_eq!(listen_addr("10.0.0.1").unwrap(), "10.0.0.1:2377");
        assert_eq!(listen_addr("eth0").unwrap(), "eth0:2377");
        assert_eq!(listen_addr(":4000").unwrap(), "0.0.0.0:4000");
        assert_eq!(listen_addr("tcp://10.0.0.1:4000").unwrap(), "10.0.0.1:4000");
        assert_eq!(listen_addr("[::1]:4000").unwrap(), "[::1]:4000");
        assert_eq!(listen_addr("fd00::1").unwrap(), "[fd00::1]:2377");
        assert!(listen_addr("10.0.0.1:http").is_err());
    }

    #[test]
    fn pools_are_reduced_to_their_network() {
        assert_eq!(network_cidr("10.10.1.5/16").unwrap(), "10.10.0.0/16");
        assert_eq!(network_cidr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(network_cidr("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        assert_eq!(network_cidr("fd00::1:2/64").unwrap(), "fd00::/64");
        assert_eq!(
            network_cidr("10.0.0.0/33").unwrap_err(),
            "invalid CIDR address: 10.0.0.0/33"
        );
        assert!(network_cidr("10.0.0.0").is_err());
    }
}
