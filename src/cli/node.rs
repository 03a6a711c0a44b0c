//! `shoal node ls|inspect`, printed as `docker node ...` prints them; the commands that
//! change nodes are in `node_update`.

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{Node, SwarmInfo, TlsInfo};
use bollard::query_parameters::ListNodesOptions;
use serde::Serialize;

use super::connect::Daemon;
use super::inspect::{self, InspectFormat};
use super::node_pretty::pretty;
use super::node_update::{self, NodesArgs, RemoveArgs, UpdateArgs};
use super::table::{ListFormat, TabWriter, json_lines};
use super::text::{natural_cmp, pretty_enum};

/// Docker's node subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Demote one or more nodes from manager in the swarm.
    Demote(NodesArgs),
    /// Display detailed information on one or more nodes.
    Inspect(InspectArgs),
    /// List nodes in the swarm.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Promote one or more nodes to manager in the swarm.
    Promote(NodesArgs),
    /// Remove one or more nodes from the swarm.
    #[command(visible_alias = "remove")]
    Rm(RemoveArgs),
    /// Update a node.
    Update(UpdateArgs),
}

/// Flags of `node ls`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only display IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
}

/// Flags and arguments of `node inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format.
    #[arg(long)]
    pretty: bool,
    /// Output format (default: indented JSON).
    #[arg(short, long, value_enum)]
    format: Option<InspectFormat>,
    /// Nodes by ID or hostname; `self` is the node the daemon runs on.
    #[arg(required = true, value_name = "self|NODE")]
    nodes: Vec<String>,
}

/// Runs a node subcommand.
pub async fn run(daemon: &Daemon, command: NodeCommand) -> Result<()> {
    let docker = daemon.client()?;
    match command {
        NodeCommand::Demote(args) => node_update::demote(&docker, &args).await,
        NodeCommand::Inspect(args) => inspect(daemon, &docker, &args).await,
        NodeCommand::Ls(args) => list(&docker, &args).await,
        NodeCommand::Promote(args) => node_update::promote(&docker, &args).await,
        NodeCommand::Rm(args) => node_update::remove(daemon, &docker, &args).await,
        NodeCommand::Update(args) => node_update::update(&docker, &args).await,
    }
}

async fn list(docker: &Docker, args: &ListArgs) -> Result<()> {
    let mut nodes = docker.list_nodes(None::<ListNodesOptions>).await?;
    sort_by_hostname(&mut nodes);
    if args.quiet && args.format == ListFormat::Table {
        for node in &nodes {
            println!("{}", id(node));
        }
        return Ok(());
    }
    // /info tells which node is the one we talk to (the `*`) and the cluster's TLS identity.
    let swarm = if nodes.is_empty() {
        SwarmInfo::default()
    } else {
        docker.info().await?.swarm.unwrap_or_default()
    };
    let rows: Vec<NodeRow> = nodes
        .iter()
        .map(|node| NodeRow::new(node, &swarm))
        .collect();
    match args.format {
        ListFormat::Table => print!("{}", node_table(&rows)),
        ListFormat::Json => print!("{}", json_lines(&rows)?),
    }
    Ok(())
}

/// Docker's order for `node ls`: hostnames in natural order (IDs break ties, which docker
/// leaves to chance).
fn sort_by_hostname(nodes: &mut [Node]) {
    nodes.sort_by(|a, b| natural_cmp(hostname(a), hostname(b)).then_with(|| id(a).cmp(id(b))));
}

/// One node as `docker node ls` shows it; the field names are docker's `--format json` keys.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct NodeRow {
    availability: String,
    engine_version: String,
    hostname: String,
    #[serde(rename = "ID")]
    id: String,
    manager_status: String,
    #[serde(rename = "Self")]
    is_self: bool,
    status: String,
    #[serde(rename = "TLSStatus")]
    tls_status: String,
}

impl NodeRow {
    /// The row for `node`, where `swarm` is the /info view of the node the CLI talks to.
    fn new(node: &Node, swarm: &SwarmInfo) -> Self {
        let description = node.description.as_ref();
        let manager_status = match &node.manager_status {
            Some(manager) if manager.leader == Some(true) => "Leader".to_string(),
            Some(manager) => pretty_enum(manager.reachability),
            None => String::new(),
        };
        Self {
            availability: pretty_enum(node.spec.as_ref().and_then(|s| s.availability)),
            engine_version: description
                .and_then(|d| d.engine.as_ref())
                .and_then(|e| e.engine_version.clone())
                .unwrap_or_default(),
            hostname: hostname(node).to_string(),
            id: id(node).to_string(),
            manager_status,
            is_self: swarm.node_id.as_deref().is_some_and(|me| me == id(node)),
            status: pretty_enum(node.status.as_ref().and_then(|s| s.state)),
            tls_status: tls_status(
                description.and_then(|d| d.tls_info.as_ref()),
                swarm.cluster.as_ref().and_then(|c| c.tls_info.as_ref()),
            )
            .to_string(),
        }
    }
}

/// Whether a node's certificate comes from the cluster's current root CA. The cluster's
/// TLS information is absent when /info has no cluster (the CLI does not talk to a manager).
fn tls_status(node: Option<&TlsInfo>, cluster: Option<&TlsInfo>) -> &'static str {
    let (node, cluster) = (tls_fields(node), tls_fields(cluster));
    if node == ["", "", ""] || cluster == ["", "", ""] {
        "Unknown"
    } else if node == cluster {
        "Ready"
    } else {
        "Needs Rotation"
    }
}

/// The TLS fields docker compares, absent ones as empty.
fn tls_fields(tls: Option<&TlsInfo>) -> [&str; 3] {
    let field =
        |f: fn(&TlsInfo) -> &Option<String>| tls.and_then(|t| f(t).as_deref()).unwrap_or("");
    [
        field(|t| &t.trust_root),
        field(|t| &t.cert_issuer_subject),
        field(|t| &t.cert_issuer_public_key),
    ]
}

/// Docker's node table; the ID cell carries ` *` for the node the CLI talks to.
fn node_table(rows: &[NodeRow]) -> String {
    let mut table = TabWriter::table();
    table.line([
        "ID  ",
        "HOSTNAME",
        "STATUS",
        "AVAILABILITY",
        "MANAGER STATUS",
        "ENGINE VERSION",
    ]);
    for row in rows {
        let marker = if row.is_self { '*' } else { ' ' };
        table.line([
            format!("{} {marker}", row.id),
            row.hostname.clone(),
            row.status.clone(),
            row.availability.clone(),
            row.manager_status.clone(),
            row.engine_version.clone(),
        ]);
    }
    table.render()
}

async fn inspect(daemon: &Daemon, docker: &Docker, args: &InspectArgs) -> Result<()> {
    let mut found = Vec::new();
    for reference in &args.nodes {
        let node = find(docker, reference).await;
        found.push(node.map_err(|error| daemon.explain(&error)));
    }
    inspect::print(
        InspectFormat::chosen(args.pretty, args.format),
        found,
        pretty,
    )
}

/// The node `reference` names; `self` is the node the daemon runs on.
async fn find(docker: &Docker, reference: &str) -> Result<Node> {
    if reference != "self" {
        return Ok(docker.inspect_node(reference).await?);
    }
    let swarm = docker.info().await?.swarm.unwrap_or_default();
    match swarm.node_id.filter(|id| !id.is_empty()) {
        Some(id) => Ok(docker.inspect_node(&id).await?),
        None => {
            // Not in a swarm: the node list fails with the daemon's own explanation.
            docker.list_nodes(None::<ListNodesOptions>).await?;
            bail!("node ID not found in /info")
        }
    }
}

fn id(node: &Node) -> &str {
    node.id.as_deref().unwrap_or_default()
}

fn hostname(node: &Node) -> &str {
    node.description
        .as_ref()
        .and_then(|d| d.hostname.as_deref())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
