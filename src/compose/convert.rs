//! Compose services and networks as Docker Engine API requests, converted field by field as
//! the docker CLI's `compose/convert` package does, so that `shoal stack deploy` and
//! `docker stack deploy` send the same specs for the same file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, HealthConfig, Ipam, IpamConfig, Limit, NetworkAttachmentConfig,
    NetworkCreateRequest, ResourceObject, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecModeReplicatedJob, ServiceSpecUpdateConfig, TaskSpec, TaskSpecContainerSpec,
    TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum as Condition,
};
use serde_yaml_ng::Value;

use super::file::{
    ComposeFile, Deploy, External, Healthcheck, Mapping, Network, Port, ResourceAmounts,
    RestartPolicy, Service, ServiceNetworks, UpdateConfig, Words,
};
use super::{IMAGE_LABEL, NAMESPACE_LABEL, volumes};
// Durations are Go durations in nanoseconds, as docker reads them.
use crate::cli::duration::parse_go_duration as duration;
use crate::cli::service::parse::{nano_cpus, publish, ram_bytes, shell_words};
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

/// The health check docker would send: a string test runs in the shell, and `disable`
/// stands for the test `NONE`.
fn health_check(check: &Healthcheck) -> Result<HealthConfig, String> {
    if check.disable {
        if check.test.is_some() {
            return Err("test and disable can't be set at the same time".into());
        }
        return Ok(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }
    let optional = |text: &Option<String>| text.as_deref().map(duration).transpose();
    let retries = check.retries.map(i64::try_from).transpose();
    Ok(HealthConfig {
        test: check.test.as_ref().map(|test| match test {
            Words::Line(line) => vec!["CMD-SHELL".into(), line.clone()],
            Words::List(words) => words.clone(),
        }),
        interval: optional(&check.interval)?,
        timeout: optional(&check.timeout)?,
        retries: retries.map_err(|_| "healthcheck retries out of range".to_string())?,
        start_period: optional(&check.start_period)?,
        start_interval: optional(&check.start_interval)?,
    })
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

/// `replicated` (with its replica count), `global`, or one of the job modes.
fn mode(deploy: &Deploy) -> Result<ServiceSpecMode, String> {
    let replicas = deploy.replicas.map(i64::try_from).transpose();
    let replicas = replicas.map_err(|_| "replicas out of range".to_string())?;
    let global_with_replicas =
        || Err("replicas can only be used with replicated or replicated-job mode".to_string());
    match deploy.mode.as_deref().unwrap_or_default() {
        "replicated" | "" => Ok(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas }),
            ..Default::default()
        }),
        "global" | "global-job" if replicas.is_some() => global_with_replicas(),
        "global" => Ok(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }),
        "global-job" => Ok(ServiceSpecMode {
            global_job: Some(HashMap::new()),
            ..Default::default()
        }),
        "replicated-job" => Ok(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: replicas,
                total_completions: replicas,
            }),
            ..Default::default()
        }),
        other => Err(format!("unknown mode: {other}")),
    }
}

/// Limits and reservations; docker always sends the (maybe empty) pair.
fn resources(deploy: &Deploy) -> Result<TaskSpecResources, String> {
    let amounts = |amounts: &ResourceAmounts| -> Result<(Option<i64>, Option<i64>), String> {
        let cpus = amounts.cpus.as_ref().map(|c| nano_cpus(&c.to_string()));
        let memory = amounts.memory.as_ref().map(|m| ram_bytes(&m.to_string()));
        Ok((cpus.transpose()?, memory.transpose()?))
    };
    let limits = deploy.resources.limits.as_ref();
    let reservations = deploy.resources.reservations.as_ref();
    Ok(TaskSpecResources {
        limits: limits
            .map(|limits| {
                let (nano_cpus, memory_bytes) = amounts(limits)?;
                Ok::<_, String>(Limit {
                    nano_cpus,
                    memory_bytes,
                    pids: limits.pids,
                })
            })
            .transpose()?,
        reservations: reservations
            .map(|reservations| {
                let (nano_cpus, memory_bytes) = amounts(reservations)?;
                Ok::<_, String>(ResourceObject {
                    nano_cpus,
                    memory_bytes,
                    generic_resources: None,
                })
            })
            .transpose()?,
        ..Default::default()
    })
}

/// `deploy.restart_policy`, else, as docker does, the engine's `restart:` read as one.
fn restart_policy(
    deploy: &Deploy,
    restart: Option<&str>,
) -> Result<Option<TaskSpecRestartPolicy>, String> {
    if let Some(policy) = &deploy.restart_policy {
        return swarm_restart_policy(policy).map(Some);
    }
    let restart = restart.unwrap_or_default();
    let (name, count) = restart.split_once(':').unwrap_or((restart, ""));
    let max_attempts = match count {
        "" => None,
        count => Some(count.parse::<i64>().map_err(|_| {
            format!("invalid restart policy: maximum retry count must be a number: {count}")
        })?),
    }
    .filter(|&n| n > 0);
    let condition = match name {
        "" | "no" => return Ok(None),
        "always" | "unless-stopped" => Condition::ANY,
        "on-failure" => Condition::ON_FAILURE,
        other => {
            return Err(format!(
                "invalid restart policy: unknown policy '{other}' (must be one of 'no', \
                 'always', 'on-failure', or 'unless-stopped')"
            ));
        }
    };
    Ok(Some(TaskSpecRestartPolicy {
        condition: Some(condition),
        max_attempts,
        ..Default::default()
    }))
}

fn swarm_restart_policy(policy: &RestartPolicy) -> Result<TaskSpecRestartPolicy, String> {
    let condition = policy
        .condition
        .as_deref()
        .map(|c| {
            c.parse::<Condition>().map_err(|_| {
                format!("invalid restart condition {c:?} (must be none, on-failure or any)")
            })
        })
        .transpose()?;
    let max_attempts = policy.max_attempts.map(i64::try_from).transpose();
    Ok(TaskSpecRestartPolicy {
        condition,
        delay: policy.delay.as_deref().map(duration).transpose()?,
        max_attempts: max_attempts.map_err(|_| "max_attempts out of range".to_string())?,
        window: policy.window.as_deref().map(duration).transpose()?,
    })
}

/// How updates roll; a rollback is configured alike. Parallelism defaults to one task.
fn update(config: &UpdateConfig) -> Result<ServiceSpecUpdateConfig, String> {
    let parallelism = i64::try_from(config.parallelism.unwrap_or(1));
    let failure_action = config.failure_action.as_deref().unwrap_or_default();
    let order = config.order.as_deref().unwrap_or_default();
    Ok(ServiceSpecUpdateConfig {
        parallelism: Some(parallelism.map_err(|_| "parallelism out of range".to_string())?),
        delay: Some(duration_or_zero(config.delay.as_deref())?),
        failure_action: Some(failure_action.parse().map_err(|_| {
            format!(
                "invalid failure_action {failure_action:?} (must be continue, pause or rollback)"
            )
        })?),
        monitor: Some(duration_or_zero(config.monitor.as_deref())?),
        max_failure_ratio: Some(config.max_failure_ratio.unwrap_or(0.0)),
        order: Some(
            order.parse().map_err(|_| {
                format!("invalid order {order:?} (must be start-first or stop-first)")
            })?,
        ),
    })
}

fn duration_or_zero(text: Option<&str>) -> Result<i64, String> {
    text.map_or(Ok(0), duration)
}

fn placement(deploy: &Deploy) -> TaskSpecPlacement {
    let placement = &deploy.placement;
    let spread = |descriptor: &String| TaskSpecPlacementPreferences {
        spread: Some(TaskSpecPlacementSpread {
            spread_descriptor: Some(descriptor.clone()),
        }),
    };
    TaskSpecPlacement {
        constraints: Some(placement.constraints.clone()).filter(|c| !c.is_empty()),
        preferences: Some(
            placement
                .preferences
                .iter()
                .map(|p| spread(&p.spread))
                .collect(),
        )
        .filter(|p: &Vec<_>| !p.is_empty()),
        max_replicas: placement
            .max_replicas_per_node
            .and_then(|max| i64::try_from(max).ok()),
        platforms: None,
    }
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
