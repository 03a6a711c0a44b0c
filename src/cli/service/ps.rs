//! `shoal service ps`, printed as `docker service ps` prints it: a service's tasks by slot,
//! newest first, each slot's earlier tasks indented under its current one.

use std::collections::HashMap;
use std::time::SystemTime;

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{Node, Service, Task};
use bollard::query_parameters::{ListNodesOptions, ListServicesOptions, ListTasksOptions};
use serde::Serialize;

use super::{filter_map, id, image, name, node_name, parse};
use crate::cli::table::{ListFormat, TabWriter, json_lines};
use crate::cli::text::{elapsed, ellipsis, human_duration, natural_cmp, pretty_enum, short_id};

/// Docker cuts task errors to this many characters unless told not to truncate.
const ERROR_WIDTH: usize = 30;

/// Flags and arguments of `service ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Do not truncate output.
    #[arg(long)]
    pub(crate) no_trunc: bool,
    /// Only display task IDs.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Filter output based on conditions provided (desired-state, id, name, node);
    /// repeatable.
    #[arg(short, long, value_name = "NAME=VALUE", value_parser = parse::filter)]
    pub(crate) filter: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: ListFormat,
    /// Services by ID, ID prefix or name.
    #[arg(required = true, value_name = "SERVICE")]
    pub(crate) services: Vec<String>,
}

/// Runs `service ps`: prints the tasks of the services found, then fails naming the
/// services not found, as docker does.
pub async fn ps(docker: &Docker, args: &PsArgs) -> Result<()> {
    let (services, missing) = find_services(docker, &args.services).await?;
    let mut filters = filter_map(&args.filter);
    if let Some(nodes) = filters.get_mut("node") {
        if nodes.iter().any(|node| node == "self") {
            let me = docker.info().await?.swarm.and_then(|s| s.node_id);
            let me = me.unwrap_or_default();
            nodes
                .iter_mut()
                .filter(|n| *n == "self")
                .for_each(|n| n.clone_from(&me));
        }
    }
    filters.insert(
        "service".into(),
        services.iter().map(|s| id(s).into()).collect(),
    );
    let options = ListTasksOptions {
        filters: Some(filters),
    };
    let tasks = docker.list_tasks(Some(options)).await?;
    let service_names = services
        .iter()
        .map(|s| (id(s).to_string(), name(s).to_string()));
    let now = SystemTime::now();
    let tasks = named(&tasks, &service_names.collect(), now);
    if args.quiet && args.format == ListFormat::Table {
        for (_, task) in &tasks {
            println!("{}", task.id.as_deref().unwrap_or_default());
        }
    } else {
        let nodes = docker.list_nodes(None::<ListNodesOptions>).await?;
        let node_id = |node: &Node| node.id.clone().unwrap_or_default();
        let nodes: HashMap<_, _> = nodes.iter().map(|n| (node_id(n), node_name(n))).collect();
        let row = |(name, task): &(String, &Task)| {
            let node = task.node_id.as_deref().unwrap_or_default();
            let node = nodes.get(node).map_or(node, String::as_str);
            TaskRow::new(name.clone(), task, node, now, !args.no_trunc)
        };
        let rows: Vec<TaskRow> = tasks.iter().map(row).collect();
        match args.format {
            ListFormat::Table => print!("{}", task_table(&rows)),
            ListFormat::Json => print!("{}", json_lines(&rows)?),
        }
    }
    if !missing.is_empty() {
        bail!(missing.join("\n"));
    }
    Ok(())
}

/// The services `references` name, each by full ID, full name or unique ID prefix (in that
/// order, as docker matches them), and docker's message for each one not found. Fails when
/// a prefix is ambiguous or nothing is found.
async fn find_services(
    docker: &Docker,
    references: &[String],
) -> Result<(Vec<Service>, Vec<String>)> {
    let list = |key: &str| {
        let filters = HashMap::from([(key.to_string(), references.to_vec())]);
        docker.list_services(Some(ListServicesOptions {
            filters: Some(filters),
            status: None,
        }))
    };
    let by_id = list("id").await?;
    let by_name = list("name").await?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for reference in references {
        let exact = by_id.iter().find(|s| id(s) == reference);
        let named = || by_name.iter().find(|s| name(s) == reference);
        if let Some(service) = exact.or_else(named) {
            found.push(service.clone());
            continue;
        }
        let prefixed: Vec<&Service> = by_id
            .iter()
            .filter(|s| id(s).starts_with(reference.as_str()))
            .collect();
        match prefixed.as_slice() {
            [] => missing.push(format!("no such service: {reference}")),
            [service] => found.push((*service).clone()),
            _ => bail!("multiple services found with provided prefix: {reference}"),
        }
    }
    if found.is_empty() {
        bail!(missing.join("\n"));
    }
    Ok((found, missing))
}

/// The tasks with docker's names for them (`web.1`, or `web.<node ID>` for a global
/// service's), in docker's order: by name, then newest first.
fn named<'a>(
    tasks: &'a [Task],
    services: &HashMap<String, String>,
    now: SystemTime,
) -> Vec<(String, &'a Task)> {
    let name = |task: &Task| {
        let service = task.service_id.as_deref().unwrap_or_default();
        let service = services.get(service).map_or(service, String::as_str);
        match task.slot.filter(|&slot| slot != 0) {
            Some(slot) => format!("{service}.{slot}"),
            None => format!("{service}.{}", task.node_id.as_deref().unwrap_or_default()),
        }
    };
    let mut named: Vec<(String, &Task)> = tasks.iter().map(|task| (name(task), task)).collect();
    let age = |task: &Task| elapsed(task.created_at.as_ref(), now);
    named.sort_by(|(a, x), (b, y)| natural_cmp(a, b).then_with(|| age(x).cmp(&age(y))));
    named
}

/// One task as `docker service ps` shows it; the field names are docker's `--format json`
/// keys.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskRow {
    current_state: String,
    desired_state: String,
    error: String,
    #[serde(rename = "ID")]
    id: String,
    image: String,
    name: String,
    node: String,
    ports: String,
}

impl TaskRow {
    /// The row of `task`, named `name`, on the node named `node`, as of `now`; `trunc`
    /// shortens the ID, image and error as docker does unless given `--no-trunc`.
    fn new(name: String, task: &Task, node: &str, now: SystemTime, trunc: bool) -> Self {
        let status = task.status.clone().unwrap_or_default();
        let since = human_duration(elapsed(status.timestamp.as_ref(), now)).to_lowercase();
        let error = status.err.unwrap_or_default();
        let error = if trunc {
            ellipsis(&error, ERROR_WIDTH)
        } else {
            error
        };
        let id = task.id.as_deref().unwrap_or_default();
        let container = task.spec.as_ref().and_then(|s| s.container_spec.as_ref());
        let reference = container
            .and_then(|c| c.image.as_deref())
            .unwrap_or_default();
        let ports = status.port_status.and_then(|s| s.ports).unwrap_or_default();
        let port = |p: &bollard::models::EndpointPortConfig| {
            let protocol = p.protocol.map(|p| p.to_string()).unwrap_or_default();
            let (published, target) = (p.published_port.unwrap_or(0), p.target_port.unwrap_or(0));
            format!("*:{published}->{target}/{protocol}")
        };
        Self {
            current_state: format!("{} {since} ago", pretty_enum(status.state)),
            desired_state: pretty_enum(task.desired_state),
            error: if error.is_empty() {
                error
            } else {
                format!("\"{error}\"")
            },
            id: if trunc { short_id(id) } else { id }.to_string(),
            image: if trunc {
                image::for_display(reference)
            } else {
                reference.to_string()
            },
            name,
            node: node.to_string(),
            ports: ports.iter().map(port).collect::<Vec<_>>().join(","),
        }
    }
}

/// Docker's task table: a task named as the one above it is an earlier task of the same
/// slot, indented under it.
fn task_table(rows: &[TaskRow]) -> String {
    let mut table = TabWriter::table();
    table.line([
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
        "PORTS",
    ]);
    let mut previous = None;
    for row in rows {
        let name = if previous == Some(&row.name) {
            format!(" \\_ {}", row.name)
        } else {
            row.name.clone()
        };
        previous = Some(&row.name);
        table.line([
            row.id.clone(),
            name,
            row.image.clone(),
            row.node.clone(),
            row.desired_state.clone(),
            row.current_state.clone(),
            row.error.clone(),
            row.ports.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
#[path = "ps_tests.rs"]
mod tests;
