//! `shoal service create`: the spec built as docker builds it, the new service's ID, then
//! the progress until it converges.

use anyhow::Result;
use bollard::Docker;
use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, NetworkAttachmentConfig, ResourceObject,
    ServiceSpec, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecPlacementPreferences,
    TaskSpecResources,
};

use super::image;
use super::parse::{self, Ports};
use super::spec::{self, Mode, ServiceFlags, add_env, key_values, non_empty};

/// Flags and arguments of `service create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Service name.
    #[arg(long)]
    name: Option<String>,
    /// Service mode.
    #[arg(long, value_enum, default_value_t)]
    mode: Mode,
    /// Set environment variables; repeatable.
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse::env)]
    env: Vec<String>,
    /// Service labels; repeatable.
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse::label)]
    label: Vec<String>,
    /// Placement constraints; repeatable.
    #[arg(long, value_name = "EXPR")]
    constraint: Vec<String>,
    /// Add a placement preference (spread=<node label>); repeatable.
    #[arg(long, value_name = "PREF", value_parser = parse::placement_pref)]
    placement_pref: Vec<TaskSpecPlacementPreferences>,
    /// Publish a port as a node port: [PUBLISHED:]TARGET[/PROTOCOL], or
    /// published=P,target=T[,protocol=tcp|udp][,mode=ingress|host]; repeatable.
    #[arg(short, long, value_name = "PORT", value_parser = parse::publish)]
    publish: Vec<Ports>,
    /// Network attachments: NETWORK, or name=NETWORK[,alias=ALIAS]...; repeatable.
    #[arg(long, value_name = "NETWORK")]
    network: Vec<String>,
    #[command(flatten)]
    flags: ServiceFlags,
    /// The image to run (the process executor runs it as a program).
    image: String,
    /// Arguments to the image's command.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    args: Vec<String>,
}

/// Runs `service create`.
pub async fn create(docker: &Docker, args: &CreateArgs) -> Result<()> {
    let networks = spec::networks(docker, &args.network).await?;
    let response = docker.create_service(args.spec(networks)?, None).await?;
    for warning in response.warnings.iter().flatten() {
        eprintln!("{warning}");
    }
    let id = response.id.unwrap_or_default();
    println!("{id}");
    args.flags.wait.wait(docker, &id).await
}

impl CreateArgs {
    /// The spec docker's `service create` sends for these flags, attached to `networks`:
    /// with the image tagged, as docker's client tags it. Docker always sends a label map, an init setting, DNS settings, resource limits and
    /// reservations, a placement and an endpoint mode, empty ones included.
    fn spec(&self, networks: Vec<NetworkAttachmentConfig>) -> Result<ServiceSpec> {
        let mut env = Vec::new();
        add_env(&mut env, &self.env);
        let ports = self.publish.iter().flat_map(|ports| ports.0.clone());
        let mut spec = ServiceSpec {
            name: self.name.clone(),
            labels: Some(key_values(&self.label)),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image::for_spec(&self.image)),
                    args: non_empty(self.args.clone()),
                    env: non_empty(env),
                    init: Some(false),
                    dns_config: Some(Default::default()),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit::default()),
                    reservations: Some(ResourceObject::default()),
                    ..Default::default()
                }),
                placement: Some(TaskSpecPlacement {
                    constraints: non_empty(self.constraint.clone()),
                    preferences: non_empty(self.placement_pref.clone()),
                    ..Default::default()
                }),
                force_update: Some(0),
                networks: non_empty(networks),
                ..Default::default()
            }),
            mode: Some(self.mode.into()),
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::VIP),
                ports: non_empty(ports.collect()),
            }),
            ..Default::default()
        };
        self.flags.apply(&mut spec)?;
        Ok(spec)
    }
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
