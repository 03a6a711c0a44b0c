//! `shoal stack deploy`: a compose file made into a stack's networks and services, or the
//! stack brought up to date with it, as `docker stack deploy` does.
//!
//! The whole file is read, checked and converted before the first request, so a file that
//! fails leaves the cluster as it was; then, like docker: the services no longer in the file
//! are removed (with `--prune`), the external networks checked, the missing networks created,
//! and each service updated if the stack has it, else created. Unlike docker, the published
//! ports are checked against the other services' before anything is created, so a clash
//! does not leave the stack half-deployed. With `--detach=false` it then follows each
//! service until it converges, as `service create` does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, Service, ServiceSpec,
};
use bollard::query_parameters::{ListServicesOptions, UpdateServiceOptions};

use super::{service_name, stack_networks, stack_services};
use crate::cli::service::progress::converge;
use crate::cli::service::{image, published_ports};
use crate::cli::update_version;
use crate::compose::{self, IMAGE_LABEL, Plan};

/// Flags and argument of `stack deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Path to a Compose file.
    #[arg(
        short = 'c',
        long = "compose-file",
        value_name = "FILE",
        required = true
    )]
    compose_file: PathBuf,
    /// Prune services that are no longer referenced.
    #[arg(long)]
    prune: bool,
    /// Exit immediately instead of waiting for the stack services to converge
    /// (`--detach=false` to wait).
    #[arg(
        short,
        long,
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,
    /// The stack's name.
    stack: String,
}

/// Runs `stack deploy`.
pub async fn deploy(docker: &Docker, args: &DeployArgs) -> Result<()> {
    let stack = &args.stack;
    if stack.is_empty() || stack.trim() != stack {
        bail!("invalid stack name: {stack:?}");
    }
    let plan = read_plan(&args.compose_file, stack)?;
    if args.prune {
        prune(docker, stack, &plan).await?;
    }
    check_ports_free(docker, &plan).await?;
    for name in &plan.external_networks {
        if docker.inspect_network(name, None).await.is_err() {
            bail!(
                "network {name:?} is declared as external, but could not be found. You need \
                 to create a swarm-scoped network before the stack is deployed"
            );
        }
    }
    let existing = stack_networks(docker, stack).await?;
    for network in plan.networks {
        if existing
            .iter()
            .any(|n| n.name.as_ref() == Some(&network.name))
        {
            continue;
        }
        let name = network.name.clone();
        println!("Creating network {name}");
        let created = docker.create_network(network).await;
        created.with_context(|| format!("failed to create network {name}"))?;
    }
    let existing: HashMap<String, Service> = stack_services(docker, stack)
        .await?
        .into_iter()
        .map(|service| (service_name(&service).to_string(), service))
        .collect();
    let mut deployed = Vec::new();
    for spec in plan.services {
        let name = spec.name.clone().unwrap_or_default();
        let id = match existing.get(&name) {
            Some(service) => update(docker, &name, service, spec).await?,
            None => {
                println!("Creating service {name}");
                let created = docker.create_service(tagged(spec), None).await;
                let response =
                    created.with_context(|| format!("failed to create service {name}"))?;
                print_warnings(response.warnings);
                response.id.unwrap_or_default()
            }
        };
        deployed.push(id);
    }
    if args.detach {
        return Ok(());
    }
    let mut failures = Vec::new();
    for id in deployed {
        if let Err(error) = converge(docker, &id, args.quiet).await {
            failures.push(format!("{id}: {error:#}"));
        }
    }
    if !failures.is_empty() {
        bail!(failures.join("\n"));
    }
    Ok(())
}

/// The file's plan for `stack`, its warnings printed; nothing is sent yet.
fn read_plan(path: &Path, stack: &str) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the compose file {}", path.display()))?;
    // Variables for the file's `${...}`; those whose name or value is not UTF-8 cannot be
    // named in it anyway.
    let env = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let loaded = compose::load(&text, &env)?;
    // Docker prints these once the file is read, before converting it.
    for warning in &loaded.warnings {
        eprintln!("{warning}\n");
    }
    let absolute = std::path::absolute(path)?;
    let base = absolute.parent().unwrap_or(Path::new("/"));
    let plan = compose::plan(stack, &loaded.file, base)?;
    Ok(plan)
}

/// Brings the stack's `service` up to `spec`, as docker does: an image unchanged in the file
/// keeps the reference the service runs (which may have gained a digest), and a forced
/// update stays as it was, so that an unchanged service is not restarted.
async fn update(
    docker: &Docker,
    name: &str,
    service: &Service,
    mut spec: ServiceSpec,
) -> Result<String> {
    let id = service.id.clone().unwrap_or_default();
    println!("Updating service {name} (id: {id})");
    let current = service.spec.clone().unwrap_or_default();
    let current_task = current.task_template.unwrap_or_default();
    let current_image = current_task.container_spec.and_then(|c| c.image);
    let task = spec.task_template.get_or_insert_with(Default::default);
    task.force_update = current_task.force_update;
    let container = task.container_spec.get_or_insert_with(Default::default);
    let labelled = current.labels.as_ref().and_then(|l| l.get(IMAGE_LABEL));
    if container.image.as_ref() == labelled && current_image.is_some() {
        container.image = current_image;
    }
    let options = UpdateServiceOptions {
        version: update_version(service.version.as_ref())?,
        registry_auth_from: "spec".into(),
        rollback: None,
    };
    let updated = docker
        .update_service(&id, tagged(spec), options, None)
        .await;
    let response = updated.with_context(|| format!("failed to update service {name}"))?;
    print_warnings(response.warnings);
    Ok(id)
}

/// `spec` with its image tagged, as docker's client sends every new image.
fn tagged(mut spec: ServiceSpec) -> ServiceSpec {
    let task = spec.task_template.as_mut();
    let container = task.and_then(|t| t.container_spec.as_mut());
    if let Some(image) = container.and_then(|c| c.image.as_mut()) {
        *image = image::for_spec(image);
    }
    spec
}

/// Refuses a port the file publishes through the routing mesh that a service outside it
/// already publishes: the daemon would refuse it too, but only after creating the services
/// before it.
async fn check_ports_free(docker: &Docker, plan: &Plan) -> Result<()> {
    let ingress = |spec: &ServiceSpec| -> Vec<EndpointPortConfig> {
        let endpoint = spec.endpoint_spec.as_ref();
        let ports = endpoint.and_then(|e| e.ports.clone()).unwrap_or_default();
        ports.into_iter().filter(is_ingress).collect()
    };
    let ours: Vec<&str> = plan
        .services
        .iter()
        .filter_map(|s| s.name.as_deref())
        .collect();
    for other in docker.list_services(None::<ListServicesOptions>).await? {
        let other_name = service_name(&other);
        if ours.contains(&other_name) {
            continue; // updated in place, its ports with it
        }
        for taken in published_ports(&other).iter().filter(|p| is_ingress(p)) {
            let clash = |port: &EndpointPortConfig| {
                port.published_port == taken.published_port && port.protocol == taken.protocol
            };
            if let Some(spec) = plan.services.iter().find(|s| ingress(s).iter().any(clash)) {
                let port = taken.published_port.unwrap_or_default();
                let protocol = taken.protocol.map(|p| p.to_string()).unwrap_or_default();
                bail!(
                    "port {port}/{protocol} of service {} is already published by service \
                     {other_name}",
                    spec.name.as_deref().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// Whether a port is published through the routing mesh (the default), rather than on the
/// task's node alone.
fn is_ingress(port: &EndpointPortConfig) -> bool {
    port.published_port.is_some_and(|p| p > 0)
        && port.publish_mode != Some(EndpointPortConfigPublishModeEnum::HOST)
}

/// Removes the stack's services that the file no longer has.
async fn prune(docker: &Docker, stack: &str, plan: &Plan) -> Result<()> {
    let wanted: Vec<&str> = plan
        .services
        .iter()
        .filter_map(|spec| spec.name.as_deref())
        .collect();
    for service in stack_services(docker, stack).await? {
        let name = service_name(&service);
        if wanted.contains(&name) {
            continue;
        }
        println!("Removing service {name}");
        let id = service.id.as_deref().unwrap_or(name);
        if let Err(error) = docker.delete_service(id).await {
            eprintln!("Failed to remove service {name}: {error}");
        }
    }
    Ok(())
}

/// The daemon's warnings, on stderr.
fn print_warnings(warnings: Option<Vec<String>>) {
    for warning in warnings.into_iter().flatten() {
        eprintln!("{warning}");
    }
}
