//! The parts of a compose v3 file that shoal converts, as serde reads them.
//!
//! Which keys may appear at all is [`super::keys`]' business (it checks them against docker's
//! schema first); these types only carry the keys the conversion uses, in the several shapes
//! compose allows for each (a command as a string or a list, an environment as a list or a
//! map, a port as a number, a string or a mapping, ...).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::Value;

/// A whole compose file.
#[derive(Debug, Default, Deserialize)]
pub struct ComposeFile {
    /// The file format version (`"3"`, `"3.8"`); absent means the latest.
    pub version: Option<String>,
    /// The services by their short name.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// The networks by the name services use for them; a bare key (`backend:`) is `None`.
    #[serde(default)]
    pub networks: BTreeMap<String, Option<Network>>,
    /// The named volumes by the name services use for them.
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<Volume>>,
}

/// One service.
#[derive(Debug, Default, Deserialize)]
pub struct Service {
    pub image: Option<String>,
    /// The task's arguments (ContainerSpec.Args).
    pub command: Option<Words>,
    /// Replaces the image's program (ContainerSpec.Command).
    pub entrypoint: Option<Words>,
    #[serde(default)]
    pub environment: Mapping,
    /// Container labels (service labels live under `deploy`).
    #[serde(default)]
    pub labels: Mapping,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub volumes: Vec<ServiceVolume>,
    pub networks: Option<ServiceNetworks>,
    pub hostname: Option<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// A Go duration (`10s`, `1m30s`).
    pub stop_grace_period: Option<String>,
    /// Docker's engine restart policy; ignored with a warning, but docker still reads it as
    /// the swarm restart policy when `deploy.restart_policy` is absent.
    pub restart: Option<String>,
    pub deploy: Option<Deploy>,
}

/// A command: one string split into words as a shell would, or the words themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Words {
    Line(String),
    List(Vec<String>),
}

/// Compose's `list_or_dict`: `["KEY=value", "KEY"]` or `{KEY: value}`, whose values may be
/// any scalar (`MYSQL_RANDOM_ROOT_PASSWORD: 1`) or null.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Mapping {
    List(Vec<String>),
    Map(BTreeMap<String, Value>),
}

impl Default for Mapping {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

/// A published port: `80`, `"8080:80"`, `"8080:80/udp"`, or the long form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Port {
    Number(u16),
    Short(String),
    Long(LongPort),
}

/// The long form of a published port.
#[derive(Debug, Clone, Deserialize)]
pub struct LongPort {
    pub target: u16,
    pub published: Option<u16>,
    pub protocol: Option<String>,
    /// `ingress` (the routing mesh, the default) or `host`.
    pub mode: Option<String>,
}

/// A mount: `name:/path[:ro]`, `/host:/path`, `/path`, or the long form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ServiceVolume {
    Short(String),
    Long(LongVolume),
}

/// The long form of a mount.
#[derive(Debug, Clone, Deserialize)]
pub struct LongVolume {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub target: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

/// The networks of a service: a list of names, or names with their attachment options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ServiceNetworks {
    List(Vec<String>),
    Map(BTreeMap<String, Option<Attachment>>),
}

/// How a service attaches to one network.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Attachment {
    /// Extra names the service answers to on this network (its short name always is one).
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, Value>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    /// The network's real name, instead of `<stack>_<key>`.
    pub name: Option<String>,
    pub driver: Option<String>,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, Value>,
    pub ipam: Option<Ipam>,
    /// A network made outside the stack: used by its name, never created or removed.
    #[serde(default)]
    pub external: External,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: Mapping,
}

/// A network's address management.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Ipam {
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Vec<IpamConfig>,
}

/// One subnet of a network.
#[derive(Debug, Clone, Deserialize)]
pub struct IpamConfig {
    pub subnet: Option<String>,
}

/// `external: true`, or the older `external: {name: real-name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum External {
    Flag(bool),
    Named { name: Option<String> },
}

impl Default for External {
    fn default() -> Self {
        Self::Flag(false)
    }
}

impl External {
    /// Whether the object is external.
    pub fn is_external(&self) -> bool {
        matches!(self, Self::Flag(true) | Self::Named { .. })
    }

    /// The real name the older form gives, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Named { name } => name.as_deref(),
            Self::Flag(_) => None,
        }
    }
}

/// A top-level named volume.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Volume {
    pub name: Option<String>,
    pub driver: Option<String>,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, Value>,
    #[serde(default)]
    pub external: External,
    #[serde(default)]
    pub labels: Mapping,
}

/// A service's `deploy:` section: how swarm runs it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Deploy {
    /// `replicated` (the default), `global`, `replicated-job` or `global-job`.
    pub mode: Option<String>,
    pub replicas: Option<u64>,
    /// Service labels.
    #[serde(default)]
    pub labels: Mapping,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default)]
    pub resources: Resources,
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub placement: Placement,
    /// `vip` (the default) or `dnsrr`.
    pub endpoint_mode: Option<String>,
}

/// How updates (and rollbacks) roll through the tasks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: Option<String>,
    pub failure_action: Option<String>,
    pub monitor: Option<String>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<String>,
}

/// Resource limits and reservations.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    pub limits: Option<ResourceAmounts>,
    pub reservations: Option<ResourceAmounts>,
}

/// CPUs and memory (and, for limits, a process count).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceAmounts {
    /// A CPU count such as `"0.5"` (docker wants a string; a plain number is taken too).
    pub cpus: Option<Scalar>,
    /// A size such as `"512M"` or a number of bytes.
    pub memory: Option<Scalar>,
    pub pids: Option<i64>,
}

/// A value compose spells as a string but people also write as a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Number(serde_yaml_ng::Number),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Number(number) => write!(f, "{number}"),
        }
    }
}

/// When swarm restarts a task.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any`.
    pub condition: Option<String>,
    pub delay: Option<String>,
    pub max_attempts: Option<u64>,
    pub window: Option<String>,
}

/// Where tasks may go.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Placement {
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub preferences: Vec<Preference>,
    pub max_replicas_per_node: Option<u64>,
}

/// A placement preference; spreading over a node attribute is the only kind.
#[derive(Debug, Clone, Deserialize)]
pub struct Preference {
    pub spread: String,
}
