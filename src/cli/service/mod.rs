//! `shoal service ...`, printed as `docker service ...` prints them. One file per command
//! (`update` also holds `scale` and `rollback`, which are updates too); `spec` and `parse`
//! turn flags into a service spec, `image` reads image references as docker does, and
//! `progress` follows a change until it converges, drawing on a `screen`.

mod create;
pub(crate) mod image;
mod inspect;
mod logs;
pub(crate) mod ls;
pub(crate) mod parse;
mod pretty;
pub(crate) mod progress;
pub(crate) mod ps;
mod screen;
pub(crate) mod spec;
mod update;

use std::collections::HashMap;

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{EndpointPortConfig, Node, Service, ServiceSpec};
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptions};

use super::connect::Daemon;

use super::update_version;
pub(super) use parse::filter as parse_filter;
pub(super) use spec::key_values;

/// Docker's service subcommands; the two with all of a spec's flags are boxed, as they are
/// far larger than the others.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Create a new service.
    Create(Box<create::CreateArgs>),
    /// Display detailed information on one or more services.
    Inspect(inspect::InspectArgs),
    /// Fetch the logs of a service or task.
    Logs(logs::LogsArgs),
    /// List services.
    #[command(visible_alias = "list")]
    Ls(ls::ListArgs),
    /// List the tasks of one or more services.
    Ps(ps::PsArgs),
    /// Remove one or more services.
    #[command(visible_alias = "remove")]
    Rm(RemoveArgs),
    /// Revert changes to a service's configuration.
    Rollback(update::RollbackArgs),
    /// Scale one or multiple replicated services.
    Scale(update::ScaleArgs),
    /// Update a service.
    Update(Box<update::UpdateArgs>),
}

/// The services `service rm` removes.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Services by ID, ID prefix or name.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
}

/// Runs a service subcommand.
pub async fn run(daemon: &Daemon, command: ServiceCommand) -> Result<()> {
    let docker = daemon.client()?;
    match command {
        ServiceCommand::Create(args) => create::create(&docker, &args).await,
        ServiceCommand::Inspect(args) => inspect::inspect(daemon, &docker, &args).await,
        ServiceCommand::Logs(args) => logs::logs(&docker, &args).await,
        ServiceCommand::Ls(args) => ls::list(&docker, &args).await,
        ServiceCommand::Ps(args) => ps::ps(&docker, &args).await,
        ServiceCommand::Rm(args) => remove(daemon, &docker, &args).await,
        ServiceCommand::Rollback(args) => update::rollback(&docker, &args).await,
        ServiceCommand::Scale(args) => update::scale(daemon, &docker, &args).await,
        ServiceCommand::Update(args) => update::update(&docker, &args).await,
    }
}

/// Runs `service rm`: removes every service it can, printing each as it was named, then
/// fails with the errors of the others, as docker does.
async fn remove(daemon: &Daemon, docker: &Docker, args: &RemoveArgs) -> Result<()> {
    let mut errors = Vec::new();
    for reference in &args.services {
        match docker.delete_service(reference).await {
            Ok(()) => println!("{reference}"),
            Err(error) => errors.push(daemon.explain(&error.into())),
        }
    }
    if !errors.is_empty() {
        bail!(errors.join("\n"));
    }
    Ok(())
}

/// Reads the service `reference` names, lets `edit` change its spec, and writes the spec
/// back at the version read. With `rollback` the daemon puts the previous spec back instead
/// (docker still sends the current one). The daemon's warnings go to stderr.
async fn modify(
    docker: &Docker,
    reference: &str,
    rollback: bool,
    edit: impl FnOnce(&mut ServiceSpec) -> Result<()>,
) -> Result<()> {
    let service = docker
        .inspect_service(reference, None::<InspectServiceOptions>)
        .await?;
    let mut spec = service.spec.unwrap_or_default();
    edit(&mut spec)?;
    // Docker's client tags the image of every spec it sends.
    let task = spec.task_template.as_mut();
    let image = task
        .and_then(|t| t.container_spec.as_mut())
        .and_then(|c| c.image.as_mut());
    if let Some(image) = image {
        *image = image::for_spec(image);
    }
    let options = UpdateServiceOptions {
        version: update_version(service.version.as_ref())?,
        registry_auth_from: "spec".into(),
        rollback: rollback.then(|| "previous".into()),
    };
    let id = service.id.unwrap_or_default();
    let response = docker.update_service(&id, spec, options, None).await?;
    for warning in response.warnings.iter().flatten() {
        eprintln!("{warning}");
    }
    Ok(())
}

/// `--filter` pairs as the API's filter map.
pub(super) fn filter_map(pairs: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in pairs {
        filters.entry(name.clone()).or_default().push(value.clone());
    }
    filters
}

/// The ports a service publishes: those the daemon allocated, or, from a daemon that does
/// not report them (shoal's before it resolved endpoints), those its spec asks for.
pub(crate) fn published_ports(service: &Service) -> Vec<EndpointPortConfig> {
    let allocated = service.endpoint.as_ref().and_then(|e| e.ports.clone());
    let requested = || {
        let spec = service.spec.as_ref()?.endpoint_spec.as_ref()?;
        spec.ports.clone()
    };
    allocated.or_else(requested).unwrap_or_default()
}

/// How docker names a node: its spec's name, else its hostname, else its ID.
fn node_name(node: &Node) -> String {
    let spec_name = node.spec.as_ref().and_then(|s| s.name.clone());
    let hostname = || node.description.as_ref().and_then(|d| d.hostname.clone());
    spec_name
        .filter(|n| !n.is_empty())
        .or_else(|| hostname().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| node.id.clone().unwrap_or_default())
}

pub(crate) fn name(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|spec| spec.name.as_deref())
        .unwrap_or_default()
}

fn id(service: &Service) -> &str {
    service.id.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_named_by_spec_name_then_hostname_then_id() {
        let node = |value| serde_json::from_value::<Node>(value).unwrap();
        let named = node(serde_json::json!({"ID": "n1", "Spec": {"Name": "front"},
                                            "Description": {"Hostname": "h1"}}));
        assert_eq!(node_name(&named), "front");
        let host = node(serde_json::json!({"ID": "n1", "Spec": {"Name": ""},
                                           "Description": {"Hostname": "h1"}}));
        assert_eq!(node_name(&host), "h1");
        assert_eq!(node_name(&node(serde_json::json!({"ID": "n1"}))), "n1");
    }

    #[test]
    fn filters_group_values_by_name() {
        let pairs = [
            ("desired-state".to_string(), "running".to_string()),
            ("node".to_string(), "h1".to_string()),
            ("node".to_string(), "h2".to_string()),
        ];
        let filters = filter_map(&pairs);
        assert_eq!(filters["node"], ["h1", "h2"]);
        assert_eq!(filters["desired-state"], ["running"]);
    }
}
