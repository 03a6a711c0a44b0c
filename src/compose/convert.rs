//! Compose services and networks as Docker Engine API requests, converted field by field as
//! the docker CLI's `compose/convert` package does, so that `shoal stack deploy` and
//! `docker stack deploy` send the same specs for the same file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, Ipam, IpamConfig, NetworkAttachmentConfig, NetworkCreateRequest, ServiceSpec,
    TaskSpec, TaskSpecContainerSpec,
};
use serde_yaml_ng::Value;

use super::deploy::{health_check, mode, placement, resources, restart_policy, update};
use super::file::{
    ComposeFile, Deploy, External, Mapping, Network, Port, Service, ServiceNetworks, Words,
};
use super::{IMAGE_LABEL, NAMESPACE_LABEL, volumes};
// Durations are Go durations in nanoseconds, as docker reads them.
use crate::cli::duration::parse_go_duration as duration;
use crate::cli::service::parse::{publish, shell_words};
use crate::cli::service::spec::recast;

/// The network a service joins when it names none.
const DEFAULT_NETWORK: &str = "default";

/// A stack's name, which scopes the names of its objects and labels them.
#[derive(Debug, Clone)]
pub struct Namespace(String);

impl Namespace {
    /// The namespace of the stack `name`.
    pub fn new(name: &str) -> Self {
        Self(name.to_string())
    }

    /// `name` inside the stack: `<stack>_<name>`.
    pub fn scope(&self, name: &str) -> String {
        format!("{}_{name}", self.0)
    }

    /// `labels` with the stack's own label added.
    pub fn labels(&self, labels: &Mapping) -> Result<HashMap<String, String>, String> {
        let mut labels: HashMap<String, String> = labels
            .entries()?
            .into_iter()
            .map(|(key, value)| (key, value.unwrap_or_default()))
            .collect();
        labels.insert(NAMESPACE_LABEL.into(), self.0.clone());
        Ok(labels)
    }
}

impl Mapping {
    /// The entries in order, a key without `=` (or with a null value) having no value.
    pub fn entries(&self) -> Result<Vec<(String, Option<String>)>, String> {
        match self {
            Self::List(items) => Ok(items
                .iter()
                .map(|item| match item.split_once('=') {
                    Some((key, value)) => (key.to_string(), Some(value.to_string())),
                    None => (item.clone(), None),
                })
                .collect()),
            Self::Map(map) => map
                .iter()
                .map(|(key, value)| Ok((key.clone(), scalar(key, value)?)))
                .collect(),
        }
    }
}

/// A YAML scalar as the text docker reads from it; null is no value at all.
fn scalar(key: &str, value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        Value::Number(number) => Ok(Some(number.to_string())),
        _ => Err(format!("{key} must be a string, number, boolean or null")),
    }
}

/// Driver options and the like: a map of scalars, as strings.
pub fn scalar_map(map: &BTreeMap<String, Value>) -> Result<HashMap<String, String>, String> {
    map.iter()
        .map(|(key, value)| Ok((key.clone(), scalar(key, value)?.unwrap_or_default())))
        .collect()
}

/// The networks the stack's services use that it must create, by name, and the names of
/// the external ones they use, which must already exist.
pub fn networks(
    namespace: &Namespace,
    file: &ComposeFile,
) -> Result<(Vec<NetworkCreateRequest>, Vec<String>), String> {
    let used: BTreeSet<&str> = file
        .services
        .values()
        .flat_map(|service| attachments(service).into_keys())
        .collect();
    let mut create = Vec::new();
    let mut external = Vec::new();
    for key in used {
        let network = file
            .networks
            .get(key)
            .cloned()
            .flatten()
            .unwrap_or_default();
        let name = network_name(namespace, key, &network);
        if network.external.is_external() {
            external.push(name);
            continue;
        }
        let ipam = network.ipam.as_ref().map(|ipam| Ipam {
            driver: ipam.driver.clone(),
            config: Some(
                ipam.config
                    .iter()
                    .map(|c| IpamConfig {
                        subnet: c.subnet.clone(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            options: None,
        });
        create.push(NetworkCreateRequest {
            name,
            driver: Some(network.driver.clone().unwrap_or_else(|| "overlay".into())),
            internal: Some(network.internal),
            attachable: Some(network.attachable),
            options: Some(scalar_map(&network.driver_opts)?).filter(|o| !o.is_empty()),
            labels: Some(namespace.labels(&network.labels)?),
            ipam,
            ..Default::default()
        });
    }
    create.sort_by(|a, b| a.name.cmp(&b.name));
    external.sort();
    Ok((create, external))
}

/// The name a network has on the cluster.
fn network_name(namespace: &Namespace, key: &str, network: &Network) -> String {
    object_name(namespace, key, network.name.as_deref(), &network.external)
}

/// The name a network or volume the file calls `key` has on the cluster: its own `name` if
/// it has one, else an external object's key, else `<stack>_<key>`.
pub fn object_name(
    namespace: &Namespace,
    key: &str,
    name: Option<&str>,
    external: &External,
) -> String {
    match name.or(external.name()) {
        Some(name) => name.to_string(),
        None if external.is_external() => key.to_string(),
        None => namespace.scope(key),
    }
}

/// A service's networks by the file's names for them, with their extra aliases; the stack's
/// default network when it names none.
fn attachments(service: &Service) -> BTreeMap<&str, Vec<String>> {
    match &service.networks {
        Some(ServiceNetworks::List(names)) if !names.is_empty() => names
            .iter()
            .map(|name| (name.as_str(), Vec::new()))
            .collect(),
        Some(ServiceNetworks::Map(map)) if !map.is_empty() => map
            .iter()
            .map(|(name, attachment)| {
                let aliases = attachment.as_ref().map(|a| a.aliases.clone());
                (name.as_str(), aliases.unwrap_or_default())
            })
            .collect(),
        _ => BTreeMap::from([(DEFAULT_NETWORK, Vec::new())]),
    }
}

/// The spec of the service the file calls `name`.
pub fn service(
    namespace: &Namespace,
    name: &str,
    service: &Service,
    file: &ComposeFile,
    base: &Path,
) -> Result<ServiceSpec, String> {
    let deploy = service.deploy.clone().unwrap_or_default();
    // Swarm refuses a service without an image; refused here, the file fails before any of
    // it is deployed rather than after the services before this one.
    let image = service.image.clone().filter(|i| !i.is_empty());
    let image = image.ok_or("no image given: every swarm service needs one")?;
    let mounts = service
        .volumes
        .iter()
        .map(|volume| volumes::mount(volume, &file.volumes, namespace, base))
        .collect::<Result<Vec<_>, _>>()?;
    let container = TaskSpecContainerSpec {
        image: Some(image.clone()),
        command: service.entrypoint.as_ref().map(words).transpose()?,
        args: service.command.as_ref().map(words).transpose()?,
        hostname: service.hostname.clone(),
        env: Some(environment(&service.environment)?),
        labels: Some(namespace.labels(&service.labels)?),
        dir: service.working_dir.clone(),
        user: service.user.clone(),
        mounts: Some(mounts).filter(|m| !m.is_empty()),
        stop_grace_period: service
            .stop_grace_period
            .as_deref()
            .map(duration)
            .transpose()?,
        health_check: service.healthcheck.as_ref().map(health_check).transpose()?,
        ..Default::default()
    };
    let mut labels = namespace.labels(&deploy.labels)?;
    labels.insert(IMAGE_LABEL.into(), image);
    let update_config = deploy.update_config.as_ref().map(update).transpose()?;
    let rollback_config = deploy.rollback_config.as_ref().map(update).transpose()?;
    Ok(ServiceSpec {
        name: Some(namespace.scope(name)),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(resources(&deploy)?),
            restart_policy: restart_policy(&deploy, service.restart.as_deref())?,
            placement: Some(placement(&deploy)),
            networks: Some(service_networks(namespace, name, service, file)?),
            ..Default::default()
        }),
        mode: Some(mode(&deploy)?),
        update_config,
        rollback_config: rollback_config
            .map(recast)
            .transpose()
            .map_err(|e| format!("{e:#}"))?,
        endpoint_spec: Some(endpoint(&deploy, &service.ports)?),
        ..Default::default()
    })
}

/// A command's words: a string is split as a shell would.
fn words(command: &Words) -> Result<Vec<String>, String> {
    match command {
        Words::List(words) => Ok(words.clone()),
        Words::Line(line) => shell_words(line).map(|w| w.0),
    }
}

/// `KEY=value` (or `KEY` alone, for a variable the file leaves unset) for each variable,
/// sorted, a later entry for a key replacing an earlier one.
fn environment(environment: &Mapping) -> Result<Vec<String>, String> {
    let variables: BTreeMap<String, Option<String>> = environment.entries()?.into_iter().collect();
    Ok(variables
        .into_iter()
        .map(|(key, value)| match value {
            Some(value) => format!("{key}={value}"),
            None => key,
        })
        .collect())
}

/// The service's network attachments, sorted by network: each with the service's short
/// name as an alias, so that other services of the stack reach it by that name.
fn service_networks(
    namespace: &Namespace,
    name: &str,
    service: &Service,
    file: &ComposeFile,
) -> Result<Vec<NetworkAttachmentConfig>, String> {
    let mut attached = Vec::new();
    for (key, mut aliases) in attachments(service) {
        let network = match file.networks.get(key) {
            Some(network) => network.clone().unwrap_or_default(),
            None if key == DEFAULT_NETWORK => Network::default(),
            None => return Err(format!("undefined network {key:?}")),
        };
        aliases.push(name.to_string());
        let driver_opts = match &service.networks {
            Some(ServiceNetworks::Map(map)) => map.get(key).cloned().flatten(),
            _ => None,
        }
        .map(|attachment| scalar_map(&attachment.driver_opts))
        .transpose()?
        .filter(|opts| !opts.is_empty());
        attached.push(NetworkAttachmentConfig {
            target: Some(network_name(namespace, key, &network)),
            aliases: Some(aliases),
            driver_opts,
        });
    }
    attached.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(attached)
}

/// Refuses a port published by two services of the file (`(service, spec)` pairs): the
/// daemon would take the first and refuse the second, half-way through the deploy.
pub fn check_published_ports<'a>(
    specs: impl IntoIterator<Item = (&'a str, &'a ServiceSpec)>,
) -> Result<(), String> {
    let mut owners: HashMap<(i64, String), &str> = HashMap::new();
    for (service, spec) in specs {
        let endpoint = spec.endpoint_spec.as_ref();
        let ports = endpoint
            .and_then(|e| e.ports.as_deref())
            .unwrap_or_default();
        for port in ports {
            let Some(published) = port.published_port else {
                continue;
            };
            let protocol = port.protocol.map(|p| p.to_string()).unwrap_or_default();
            if let Some(owner) = owners.insert((published, protocol.clone()), service) {
                if owner != service {
                    return Err(format!(
                        "port {published}/{protocol} is published by both {owner} and {service}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The endpoint mode and the published ports, sorted by published port as docker sorts them.
fn endpoint(deploy: &Deploy, ports: &[Port]) -> Result<EndpointSpec, String> {
    let mut configs = Vec::new();
    for port in ports {
        match port {
            Port::Number(target) => configs.extend(publish(&target.to_string())?.0),
            Port::Short(spec) => configs.extend(publish(spec)?.0),
            Port::Long(long) => {
                let protocol = long.protocol.as_deref().unwrap_or("tcp");
                let mode = long.mode.as_deref().unwrap_or("ingress");
                configs.push(EndpointPortConfig {
                    protocol: Some(protocol.parse::<EndpointPortConfigProtocolEnum>().map_err(
                        |_| format!("invalid protocol {protocol:?} (must be tcp, udp or sctp)"),
                    )?),
                    target_port: Some(long.target.into()),
                    published_port: long.published.map(i64::from),
                    publish_mode: Some(
                        mode.parse::<EndpointPortConfigPublishModeEnum>()
                            .map_err(|_| {
                                format!("invalid mode {mode:?} (must be ingress or host)")
                            })?,
                    ),
                    ..Default::default()
                });
            }
        }
    }
    configs.sort_by_key(|port| port.published_port.unwrap_or(0));
    let mode = deploy.endpoint_mode.as_deref().unwrap_or_default();
    let mode = match mode.to_lowercase().as_str() {
        "" => None,
        lower => Some(
            lower
                .parse()
                .map_err(|_| format!("invalid endpoint_mode {mode:?} (must be vip or dnsrr)"))?,
        ),
    };
    Ok(EndpointSpec {
        mode,
        ports: Some(configs),
    })
}
