//! `shoal network create|ls|inspect|rm`, printed as `docker network ...` prints them.

use std::collections::HashMap;

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, Network, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptions;
use serde::Serialize;

use super::connect::Daemon;
use super::inspect::{self, InspectFormat, indented_json};
use super::service::{filter_map, key_values, parse_filter};
use super::table::{ListFormat, TabWriter, json_lines};
use super::text::short_id;

/// Docker's network subcommands (those that make sense for swarm overlays).
#[derive(Debug, clap::Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Remove one or more networks.
    #[command(visible_alias = "remove")]
    Rm(RemoveArgs),
}

/// Flags and argument of `network create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Driver to manage the network (shoal has overlay only).
    #[arg(short, long, default_value = "overlay")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment.
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 gateway for the master subnet.
    #[arg(long)]
    gateway: Vec<String>,
    /// Enable manual container attachment.
    #[arg(long)]
    attachable: bool,
    /// Restrict external access to the network.
    #[arg(long)]
    internal: bool,
    /// Set driver specific options (KEY=VALUE); repeatable.
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// Set metadata on a network (KEY=VALUE); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// The network's name.
    name: String,
}

/// Flags of `network ls`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only display network IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output.
    #[arg(long)]
    no_trunc: bool,
    /// Provide filter values (e.g. "driver=overlay"); repeatable.
    #[arg(short, long, value_name = "NAME=VALUE", value_parser = parse_filter)]
    filter: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
}

/// Flags and arguments of `network inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Output format (default: indented JSON).
    #[arg(short, long, value_enum)]
    format: Option<InspectFormat>,
    /// Networks by ID, ID prefix or name.
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// The networks `network rm` removes.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Networks by ID, ID prefix or name.
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// Runs a network subcommand.
pub async fn run(daemon: &Daemon, command: NetworkCommand) -> Result<()> {
    let docker = daemon.client()?;
    match command {
        NetworkCommand::Create(args) => create(&docker, &args).await,
        NetworkCommand::Inspect(args) => inspect(daemon, &docker, &args).await,
        NetworkCommand::Ls(args) => list(&docker, &args).await,
        NetworkCommand::Rm(args) => remove(daemon, &docker, &args).await,
    }
}

impl CreateArgs {
    /// The request docker's `network create` sends for these flags.
    fn request(&self) -> Result<NetworkCreateRequest> {
        if self.gateway.len() > self.subnet.len() {
            bail!("every ip-range or gateway must have a corresponding subnet");
        }
        let config: Vec<IpamConfig> = self
            .subnet
            .iter()
            .enumerate()
            .map(|(i, subnet)| IpamConfig {
                subnet: Some(subnet.clone()),
                gateway: self.gateway.get(i).cloned(),
                ..Default::default()
            })
            .collect();
        Ok(NetworkCreateRequest {
            name: self.name.clone(),
            driver: Some(self.driver.clone()),
            internal: Some(self.internal),
            attachable: Some(self.attachable),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(config),
                options: Some(HashMap::new()),
            }),
            options: Some(key_values(&self.opt)),
            labels: Some(key_values(&self.label)),
            ..Default::default()
        })
    }
}

async fn create(docker: &Docker, args: &CreateArgs) -> Result<()> {
    let response = docker.create_network(args.request()?).await?;
    if !response.warning.is_empty() {
        eprintln!("{}", response.warning);
    }
    println!("{}", response.id);
    Ok(())
}

/// One network as `docker network ls` shows it; the field names are docker's `--format json`
/// keys.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkRow {
    created_at: String,
    driver: String,
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "IPv4")]
    ipv4: String,
    #[serde(rename = "IPv6")]
    ipv6: String,
    internal: String,
    labels: String,
    name: String,
    scope: String,
}

impl NetworkRow {
    fn new(network: &Network, truncate: bool) -> Self {
        let id = network.id.as_deref().unwrap_or_default();
        let mut labels: Vec<String> = network
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let yes_no = |b: Option<bool>| b.unwrap_or(false).to_string();
        Self {
            created_at: network.created.clone().unwrap_or_default(),
            driver: network.driver.clone().unwrap_or_default(),
            id: if truncate { short_id(id) } else { id }.to_string(),
            ipv4: "true".into(),
            ipv6: yes_no(network.enable_ipv6),
            internal: yes_no(network.internal),
            labels: labels.join(","),
            name: network.name.clone().unwrap_or_default(),
            scope: network.scope.clone().unwrap_or_default(),
        }
    }
}

/// Docker's network table.
fn network_table(rows: &[NetworkRow]) -> String {
    let mut table = TabWriter::table();
    table.line(["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    for row in rows {
        table.line([
            row.id.clone(),
            row.name.clone(),
            row.driver.clone(),
            row.scope.clone(),
        ]);
    }
    table.render()
}

async fn list(docker: &Docker, args: &ListArgs) -> Result<()> {
    let options = ListNetworksOptions {
        filters: Some(filter_map(&args.filter)).filter(|f| !f.is_empty()),
    };
    let mut networks = docker.list_networks(Some(options)).await?;
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<NetworkRow> = networks
        .iter()
        .map(|n| NetworkRow::new(n, !args.no_trunc))
        .collect();
    match (args.format, args.quiet) {
        (ListFormat::Table, true) => rows.iter().for_each(|row| println!("{}", row.id)),
        (ListFormat::Table, false) => print!("{}", network_table(&rows)),
        (ListFormat::Json, _) => print!("{}", json_lines(&rows)?),
    }
    Ok(())
}

async fn inspect(daemon: &Daemon, docker: &Docker, args: &InspectArgs) -> Result<()> {
    let mut found = Vec::new();
    for reference in &args.networks {
        let network = docker.inspect_network(reference, None).await;
        found.push(network.map_err(|error| daemon.explain(&error.into())));
    }
    // Networks have no human-friendly form: `pretty` is the indented JSON.
    inspect::print(args.format, found, |network| {
        indented_json(network).unwrap_or_default() + "\n"
    })
}

/// Runs `network rm`: removes every network it can, printing each as it was named, then
/// fails with the errors of the others, as docker does.
async fn remove(daemon: &Daemon, docker: &Docker, args: &RemoveArgs) -> Result<()> {
    let mut errors = Vec::new();
    for reference in &args.networks {
        match docker.remove_network(reference).await {
            Ok(()) => println!("{reference}"),
            Err(error) => errors.push(daemon.explain(&error.into())),
        }
    }
    if !errors.is_empty() {
        bail!(errors.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: NetworkCommand,
    }

    fn create_args(line: &[&str]) -> CreateArgs {
        let argv = ["shoal", "create"].iter().chain(line);
        match Cli::try_parse_from(argv).unwrap().command {
            NetworkCommand::Create(args) => args,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn create_sends_what_docker_sends() {
        let args = create_args(&[
            "--subnet",
            "10.9.0.0/24",
            "--gateway",
            "10.9.0.254",
            "--attachable",
            "--opt",
            "com.docker.network.driver.mtu=1400",
            "--label",
            "a=b",
            "mynet",
        ]);
        let request = args.request().unwrap();
        assert_eq!(request.name, "mynet");
        assert_eq!(request.driver.as_deref(), Some("overlay"));
        assert_eq!(request.attachable, Some(true));
        let config = &request.ipam.unwrap().config.unwrap()[0];
        assert_eq!(config.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(config.gateway.as_deref(), Some("10.9.0.254"));
        assert_eq!(
            request.options.unwrap()["com.docker.network.driver.mtu"],
            "1400"
        );
        assert_eq!(request.labels.unwrap()["a"], "b");
        let lone_gateway = create_args(&["--gateway", "10.9.0.1", "x"]);
        assert!(lone_gateway.request().is_err());
    }

    #[test]
    fn ls_prints_dockers_columns() {
        let network = Network {
            id: Some("4hzi39991c4z65snynt962tnj".into()),
            name: Some("mynet".into()),
            driver: Some("overlay".into()),
            scope: Some("swarm".into()),
            ..Default::default()
        };
        let table = network_table(&[NetworkRow::new(&network, true)]);
        assert_eq!(
            table,
            "NETWORK ID     NAME      DRIVER    SCOPE\n4hzi39991c4z   mynet     overlay   swarm\n"
        );
    }
}
