//! `shoal service ls`, printed as `docker service ls` prints it.

use anyhow::Result;
use bollard::Docker;
use bollard::models::{EndpointPortConfig, EndpointPortConfigPublishModeEnum, Service};
use bollard::query_parameters::ListServicesOptions;
use serde::Serialize;

use super::parse;
use super::{filter_map, id, image, name, published_ports};
use crate::cli::table::{ListFormat, TabWriter, json_lines};
use crate::cli::text::{natural_cmp, short_id};

/// Flags of `service ls`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only display IDs.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Filter output based on conditions provided (id, label, mode, name); repeatable.
    #[arg(short, long, value_name = "NAME=VALUE", value_parser = parse::filter)]
    pub(crate) filter: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: ListFormat,
}

/// Runs `service ls`.
pub async fn list(docker: &Docker, args: &ListArgs) -> Result<()> {
    let quiet = args.quiet && args.format == ListFormat::Table;
    let options = ListServicesOptions {
        filters: Some(filter_map(&args.filter)).filter(|f| !f.is_empty()),
        // The running and desired task counts, which only the table and JSON show.
        status: (!quiet).then_some(true),
    };
    let mut services = docker.list_services(Some(options)).await?;
    services.sort_by(|a, b| natural_cmp(name(a), name(b)));
    if quiet {
        for service in &services {
            println!("{}", short_id(id(service)));
        }
        return Ok(());
    }
    let rows: Vec<ServiceRow> = services.iter().map(ServiceRow::new).collect();
    match args.format {
        ListFormat::Table => print!("{}", service_table(&rows)),
        ListFormat::Json => print!("{}", json_lines(&rows)?),
    }
    Ok(())
}

/// One service as `docker service ls` shows it; the field names are docker's `--format
/// json` keys.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceRow {
    #[serde(rename = "ID")]
    id: String,
    image: String,
    mode: String,
    name: String,
    ports: String,
    replicas: String,
}

impl ServiceRow {
    fn new(service: &Service) -> Self {
        let spec = service.spec.clone().unwrap_or_default();
        let mode = spec.mode.unwrap_or_default();
        let container = spec.task_template.and_then(|t| t.container_spec);
        let reference = container.and_then(|c| c.image).unwrap_or_default();
        Self {
            id: short_id(id(service)).to_string(),
            image: image::for_display(&reference),
            mode: match () {
                () if mode.global.is_some() => "global",
                () if mode.replicated.is_some() => "replicated",
                () if mode.replicated_job.is_some() => "replicated job",
                () if mode.global_job.is_some() => "global job",
                () => "",
            }
            .to_string(),
            name: name(service).to_string(),
            ports: ports(&published_ports(service)),
            replicas: replicas(service),
        }
    }
}

/// Docker's REPLICAS column: running out of desired tasks, with the per-node limit of a
/// replicated service that has one.
fn replicas(service: &Service) -> String {
    let status = service.service_status.clone().unwrap_or_default();
    let (running, desired) = (
        status.running_tasks.unwrap_or(0),
        status.desired_tasks.unwrap_or(0),
    );
    let spec = service.spec.as_ref();
    let replicated = spec
        .and_then(|s| s.mode.as_ref())
        .is_some_and(|m| m.replicated.is_some());
    let max = spec
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.placement.as_ref())
        .and_then(|p| p.max_replicas)
        .filter(|&max| replicated && max > 0);
    match max {
        Some(max) => format!("{running}/{desired} (max {max} per node)"),
        None => format!("{running}/{desired}"),
    }
}

/// Docker's PORTS column: the ports published through the routing mesh, by protocol then
/// published port, with runs of consecutive ports joined into ranges (`*:80-81->80-81/tcp`).
fn ports(published: &[EndpointPortConfig]) -> String {
    let mut ingress: Vec<(String, u32, u32)> = published
        .iter()
        .filter(|p| p.publish_mode == Some(EndpointPortConfigPublishModeEnum::INGRESS))
        .map(|p| {
            let number = |port: Option<i64>| u32::try_from(port.unwrap_or(0)).unwrap_or(0);
            let protocol = p.protocol.map(|p| p.to_string()).unwrap_or_default();
            (protocol, number(p.published_port), number(p.target_port))
        })
        .collect();
    ingress.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut ranges: Vec<PortRange> = Vec::new();
    for (protocol, published, target) in ingress {
        match ranges.last_mut() {
            Some(range) if range.extends(&protocol, published, target) => {
                range.published.1 = published;
                range.target.1 = target;
            }
            _ => ranges.push(PortRange {
                protocol,
                published: (published, published),
                target: (target, target),
            }),
        }
    }
    let shown: Vec<String> = ranges
        .iter()
        // Docker leaves out ports not (yet) given a published port.
        .filter(|range| range.published.0 > 0)
        .map(PortRange::to_string)
        .collect();
    shown.join(", ")
}

/// Consecutive published ports of one protocol mapped to their target ports.
struct PortRange {
    protocol: String,
    published: (u32, u32),
    target: (u32, u32),
}

impl PortRange {
    /// Whether the next port carries the range on: same protocol, published and target
    /// ports one past the range's (or the same target, for many ports onto one), and not a
    /// target already inside a range of targets. Go's unsigned arithmetic wraps, so a port
    /// below the range never carries it.
    fn extends(&self, protocol: &str, published: u32, target: u32) -> bool {
        let is_range = self.target.0 != self.target.1;
        protocol == self.protocol
            && published.wrapping_sub(self.published.1) <= 1
            && target.wrapping_sub(self.target.1) <= 1
            && !(is_range && target <= self.target.1)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = |(start, end): (u32, u32)| {
            if end > start {
                format!("{start}-{end}")
            } else {
                start.to_string()
            }
        };
        let (published, target) = (span(self.published), span(self.target));
        write!(f, "*:{published}->{target}/{}", self.protocol)
    }
}

/// Docker's service table.
fn service_table(rows: &[ServiceRow]) -> String {
    let mut table = TabWriter::table();
    table.line(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]);
    for row in rows {
        table.line([
            row.id.as_str(),
            &row.name,
            &row.mode,
            &row.replicas,
            &row.image,
            &row.ports,
        ]);
    }
    table.render()
}

#[cfg(test)]
#[path = "ls_tests.rs"]
mod tests;
