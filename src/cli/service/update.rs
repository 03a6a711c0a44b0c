//! `shoal service update`, `scale` and `rollback`: each a read-modify-write of the service's
//! spec at the version read, then the progress of the change, as docker does them.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{
    EndpointPortConfig, NetworkAttachmentConfig, ServiceSpec, TaskSpecPlacementPreferences,
};

use super::modify;
use super::parse::{self, Ports, Words};
use super::progress::{self, WaitFlags};
use super::spec::{self, ServiceFlags, add_env, env_key, key_values, non_empty, replicated};
use crate::cli::connect::Daemon;

/// Flags and argument of `service update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Service image tag.
    #[arg(long)]
    image: Option<String>,
    /// Service command args.
    #[arg(long, value_name = "COMMAND", value_parser = parse::shell_words)]
    args: Option<Words>,
    /// Add or update an environment variable; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse::env)]
    env_add: Vec<String>,
    /// Remove an environment variable; repeatable.
    #[arg(long, value_name = "KEY")]
    env_rm: Vec<String>,
    /// Add or update a service label; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse::label)]
    label_add: Vec<String>,
    /// Remove a label by its key; repeatable.
    #[arg(long, value_name = "KEY")]
    label_rm: Vec<String>,
    /// Add or update a placement constraint; repeatable.
    #[arg(long, value_name = "EXPR")]
    constraint_add: Vec<String>,
    /// Remove a constraint; repeatable.
    #[arg(long, value_name = "EXPR")]
    constraint_rm: Vec<String>,
    /// Add a placement preference; repeatable.
    #[arg(long, value_name = "PREF", value_parser = parse::placement_pref)]
    placement_pref_add: Vec<TaskSpecPlacementPreferences>,
    /// Remove a placement preference; repeatable.
    #[arg(long, value_name = "PREF", value_parser = parse::placement_pref)]
    placement_pref_rm: Vec<TaskSpecPlacementPreferences>,
    /// Add or update a published port; repeatable.
    #[arg(long, value_name = "PORT", value_parser = parse::publish)]
    publish_add: Vec<Ports>,
    /// Remove a published port by its target port; repeatable.
    #[arg(long, value_name = "PORT", value_parser = parse::publish)]
    publish_rm: Vec<Ports>,
    /// Add a network; repeatable.
    #[arg(long, value_name = "NETWORK")]
    network_add: Vec<String>,
    /// Remove a network; repeatable.
    #[arg(long, value_name = "NETWORK")]
    network_rm: Vec<String>,
    /// Force update even if no changes require it.
    #[arg(long)]
    force: bool,
    /// Rollback to previous specification.
    #[arg(long)]
    rollback: bool,
    #[command(flatten)]
    flags: ServiceFlags,
    /// The service by ID, ID prefix or name.
    service: String,
}

/// Arguments of `service scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    detach: bool,
    /// Services and the number of tasks each should run.
    #[arg(required = true, value_name = "SERVICE=REPLICAS", value_parser = parse::scale)]
    scales: Vec<(String, String)>,
}

/// Flags and argument of `service rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    wait: WaitFlags,
    /// The service by ID, ID prefix or name.
    service: String,
}

/// The networks `--network-add` and `--network-rm` name, resolved to attachments by ID.
struct NetworkChanges {
    add: Vec<NetworkAttachmentConfig>,
    remove: Vec<NetworkAttachmentConfig>,
}

/// Runs `service update`, which prints the service as it was named.
pub async fn update(docker: &Docker, args: &UpdateArgs) -> Result<()> {
    let networks = NetworkChanges {
        add: spec::networks(docker, &args.network_add).await?,
        remove: spec::networks(docker, &args.network_rm).await?,
    };
    let edit = |spec: &mut ServiceSpec| args.edit(spec, &networks);
    modify(docker, &args.service, args.rollback, edit).await?;
    println!("{}", args.service);
    args.flags.wait.wait(docker, &args.service).await
}

/// Runs `service scale`: sets each service's count, then waits for each to converge.
/// A service that fails does not stop the others; their errors come last, as with docker.
pub async fn scale(daemon: &Daemon, docker: &Docker, args: &ScaleArgs) -> Result<()> {
    let mut errors = Vec::new();
    let mut scaled = Vec::new();
    for (service, replicas) in &args.scales {
        let count: i64 = match parse::unsigned(replicas) {
            Ok(count) => count,
            Err(error) => {
                errors.push(format!(
                    "{service}: invalid replicas value {replicas}: {error}"
                ));
                continue;
            }
        };
        let set = |spec: &mut ServiceSpec| match replicated(spec) {
            Some(replicated) => {
                replicated.replicas = Some(count);
                Ok(())
            }
            None => bail!("scale can only be used with replicated or replicated-job mode"),
        };
        match modify(docker, service, false, set).await {
            Ok(()) => {
                println!("{service} scaled to {count}");
                scaled.push(service);
            }
            Err(error) => errors.push(format!("{service}: {}", daemon.explain(&error))),
        }
    }
    if !args.detach {
        for service in scaled {
            if let Err(error) = progress::converge(docker, service, false).await {
                errors.push(format!("{service}: {}", daemon.explain(&error)));
            }
        }
    }
    if !errors.is_empty() {
        bail!(errors.join("\n"));
    }
    Ok(())
}

/// Runs `service rollback`: the daemon puts the previous spec back.
pub async fn rollback(docker: &Docker, args: &RollbackArgs) -> Result<()> {
    modify(docker, &args.service, true, |_| Ok(())).await?;
    println!("{}", args.service);
    args.wait.wait(docker, &args.service).await
}

impl UpdateArgs {
    /// Applies the flags to `spec`; with `--rollback`, which docker takes with no other flag
    /// but `-d` and `-q`, refuses any flag that would change it.
    fn edit(&self, spec: &mut ServiceSpec, networks: &NetworkChanges) -> Result<()> {
        let before = self.rollback.then(|| spec.clone());
        self.apply(spec, networks)?;
        if before.is_some_and(|before| before != *spec) {
            bail!("other flags may not be combined with --rollback");
        }
        Ok(())
    }

    /// Applies the flags to `spec` as docker does: what is removed goes before what is
    /// added, and lists docker sorts (constraints, ports, networks) come out sorted.
    fn apply(&self, spec: &mut ServiceSpec, networks: &NetworkChanges) -> Result<()> {
        if !self.label_rm.is_empty() || !self.label_add.is_empty() {
            let labels = spec.labels.get_or_insert_default();
            for key in &self.label_rm {
                labels.remove(key);
            }
            labels.extend(key_values(&self.label_add));
        }
        let task = spec.task_template.get_or_insert_default();
        let container = task.container_spec.get_or_insert_default();
        if let Some(image) = &self.image {
            container.image = Some(image.clone());
        }
        if let Some(args) = &self.args {
            container.args = Some(args.0.clone());
        }
        if !self.env_rm.is_empty() || !self.env_add.is_empty() {
            let mut env = container.env.take().unwrap_or_default();
            env.retain(|variable| !self.env_rm.iter().any(|key| key == env_key(variable)));
            add_env(&mut env, &self.env_add);
            container.env = Some(env);
        }
        if !self.constraint_rm.is_empty() || !self.constraint_add.is_empty() {
            let placement = task.placement.get_or_insert_default();
            let mut constraints = placement.constraints.take().unwrap_or_default();
            constraints.extend(self.constraint_add.iter().cloned());
            constraints.retain(|constraint| !self.constraint_rm.contains(constraint));
            constraints.sort();
            placement.constraints = non_empty(constraints);
        }
        if !self.placement_pref_rm.is_empty() || !self.placement_pref_add.is_empty() {
            let placement = task.placement.get_or_insert_default();
            let mut preferences = placement.preferences.take().unwrap_or_default();
            preferences.retain(|preference| !self.placement_pref_rm.contains(preference));
            preferences.extend(self.placement_pref_add.iter().cloned());
            placement.preferences = non_empty(preferences);
        }
        if !networks.remove.is_empty() || !networks.add.is_empty() {
            update_networks(&mut task.networks, networks)?;
        }
        if self.force {
            task.force_update = Some(task.force_update.unwrap_or(0) + 1);
        }
        if !self.publish_rm.is_empty() || !self.publish_add.is_empty() {
            let endpoint = spec.endpoint_spec.get_or_insert_default();
            let remove: Vec<_> = self.publish_rm.iter().flat_map(|p| &p.0).collect();
            let add: Vec<_> = self.publish_add.iter().flat_map(|p| &p.0).collect();
            update_ports(&mut endpoint.ports, &remove, &add);
        }
        self.flags.apply(spec)
    }
}

/// Detaches the networks removed, then attaches those added, refusing one already attached.
fn update_networks(
    attached: &mut Option<Vec<NetworkAttachmentConfig>>,
    changes: &NetworkChanges,
) -> Result<()> {
    let mut networks = attached.take().unwrap_or_default();
    networks.retain(|network| !changes.remove.iter().any(|r| r.target == network.target));
    for network in &changes.add {
        if networks.iter().any(|n| n.target == network.target) {
            let target = network.target.as_deref().unwrap_or_default();
            bail!("service is already attached to network {target}");
        }
        networks.push(network.clone());
    }
    networks.sort_by(|a, b| a.target.cmp(&b.target));
    *attached = non_empty(networks);
    Ok(())
}

/// Removes the published ports with the target, protocol and mode of one in `remove`, then
/// adds those in `add` the service does not publish yet, sorted as docker sorts them.
fn update_ports(
    ports: &mut Option<Vec<EndpointPortConfig>>,
    remove: &[&EndpointPortConfig],
    add: &[&EndpointPortConfig],
) {
    let mut kept: BTreeMap<String, EndpointPortConfig> = BTreeMap::new();
    for port in ports.take().into_iter().flatten() {
        if !remove.iter().any(|r| same_target(r, &port)) {
            kept.entry(port_key(&port)).or_insert(port);
        }
    }
    for port in add {
        kept.entry(port_key(port))
            .or_insert_with(|| (*port).clone());
    }
    *ports = non_empty(kept.into_values().collect());
}

/// Docker's key for a published port, by which it sorts them: `published:target/protocol/mode`.
fn port_key(port: &EndpointPortConfig) -> String {
    let protocol = port.protocol.map(|p| p.to_string()).unwrap_or_default();
    let mode = port.publish_mode.map(|m| m.to_string()).unwrap_or_default();
    let published = port.published_port.unwrap_or(0);
    let target = port.target_port.unwrap_or(0);
    format!("{published}:{target}/{protocol}/{mode}")
}

/// Whether `--publish-rm`'s `port` names `published`: same target, protocol and mode, where
/// no protocol means tcp and no mode means ingress.
fn same_target(port: &EndpointPortConfig, published: &EndpointPortConfig) -> bool {
    let protocol = |p: &EndpointPortConfig| match p.protocol.map(|p| p.to_string()) {
        None => "tcp".to_string(),
        Some(protocol) if protocol.is_empty() => "tcp".to_string(),
        Some(protocol) => protocol,
    };
    let mode = |p: &EndpointPortConfig| match p.publish_mode.map(|m| m.to_string()) {
        None => "ingress".to_string(),
        Some(mode) if mode.is_empty() => "ingress".to_string(),
        Some(mode) => mode,
    };
    port.target_port == published.target_port
        && protocol(port) == protocol(published)
        && mode(port) == mode(published)
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
