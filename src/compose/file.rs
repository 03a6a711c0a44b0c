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
    /// The image; for the process executor, the program to run.
    pub image: Option<String>,
    /// The task's arguments (ContainerSpec.Args).
    pub command: Option<Words>,
    /// Replaces the image's program (ContainerSpec.Command).
    pub entrypoint: Option<Words>,
    /// The tasks' environment variables.
    #[serde(default)]
    pub environment: Mapping,
    /// Container labels (service labels live under `deploy`).
    #[serde(default)]
    pub labels: Mapping,
    /// The ports published for the service.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// What is mounted into the tasks.
    #[serde(default)]
    pub volumes: Vec<ServiceVolume>,
    /// The networks the tasks join; the stack's default network when absent.
    pub networks: Option<ServiceNetworks>,
    /// The tasks' hostname.
    pub hostname: Option<String>,
    /// The directory the program starts in.
    pub working_dir: Option<String>,
    /// The user the program runs as.
    pub user: Option<String>,
    /// A Go duration (`10s`, `1m30s`).
    pub stop_grace_period: Option<String>,
    /// Docker's engine restart policy; ignored with a warning, but docker still reads it as
    /// the swarm restart policy when `deploy.restart_policy` is absent.
    pub restart: Option<String>,
    /// How swarm runs the service.
    pub deploy: Option<Deploy>,
    /// How to tell whether a task works.
    pub healthcheck: Option<Healthcheck>,
}

/// A task's health check.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Healthcheck {
    /// The command: a string run by the shell, or `[CMD, ...]`, `[CMD-SHELL, ...]`, `[NONE]`.
    pub test: Option<Words>,
    /// A Go duration between checks.
    pub interval: Option<String>,
    /// A Go duration after which a check counts as failed.
    pub timeout: Option<String>,
    /// Failures in a row that make the task unhealthy.
    pub retries: Option<u64>,
    /// A Go duration during which failures do not count.
    pub start_period: Option<String>,
    /// A Go duration between checks during the start period.
    pub start_interval: Option<String>,
    /// Turns off the image's health check.
    #[serde(default)]
    pub disable: bool,
}

/// A command: one string split into words as a shell would, or the words themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Words {
    /// One string, split as a shell would.
    Line(String),
    /// The items as written.
    List(Vec<String>),
}

/// Compose's `list_or_dict`: `["KEY=value", "KEY"]` or `{KEY: value}`, whose values may be
/// any scalar (`MYSQL_RANDOM_ROOT_PASSWORD: 1`) or null.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Mapping {
    /// The items as written.
    List(Vec<String>),
    /// Keys with their values.
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
    /// A bare number.
    Number(u16),
    /// The short syntax, one string.
    Short(String),
    /// The long syntax, a mapping.
    Long(LongPort),
}

/// The long form of a published port.
#[derive(Debug, Clone, Deserialize)]
pub struct LongPort {
    /// The port (or path) inside the task.
    pub target: u16,
    /// The port published on every node; the daemon picks one when absent.
    pub published: Option<u16>,
    /// `tcp` (the default), `udp` or `sctp`.
    pub protocol: Option<String>,
    /// `ingress` (the routing mesh, the default) or `host`.
    pub mode: Option<String>,
}

/// A mount: `name:/path[:ro]`, `/host:/path`, `/path`, or the long form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ServiceVolume {
    /// The short syntax, one string.
    Short(String),
    /// The long syntax, a mapping.
    Long(LongVolume),
}

/// The long form of a mount.
#[derive(Debug, Clone, Deserialize)]
pub struct LongVolume {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A volume name or, for a bind mount, a host path.
    pub source: Option<String>,
    /// The port (or path) inside the task.
    pub target: Option<String>,
    /// Whether the task may only read.
    #[serde(default)]
    pub read_only: bool,
}

/// The networks of a service: a list of names, or names with their attachment options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ServiceNetworks {
    /// The items as written.
    List(Vec<String>),
    /// Keys with their values.
    Map(BTreeMap<String, Option<Attachment>>),
}

/// How a service attaches to one network.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Attachment {
    /// Extra names the service answers to on this network (its short name always is one).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Options for the driver.
    #[serde(default)]
    pub driver_opts: BTreeMap<String, Value>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    /// The network's real name, instead of `<stack>_<key>`.
    pub name: Option<String>,
    /// The driver that makes the object.
    pub driver: Option<String>,
    /// Options for the driver.
    #[serde(default)]
    pub driver_opts: BTreeMap<String, Value>,
    /// Address management: the subnets to use.
    pub ipam: Option<Ipam>,
    /// A network made outside the stack: used by its name, never created or removed.
    #[serde(default)]
    pub external: External,
    /// Whether the network is cut off from the outside.
    #[serde(default)]
    pub internal: bool,
    /// Whether standalone containers may join the network.
    #[serde(default)]
    pub attachable: bool,
    /// Labels for the object (the stack's label is added).
    #[serde(default)]
    pub labels: Mapping,
}

/// A network's address management.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Ipam {
    /// The driver that makes the object.
    pub driver: Option<String>,
    /// The subnets.
    #[serde(default)]
    pub config: Vec<IpamConfig>,
}

/// One subnet of a network.
#[derive(Debug, Clone, Deserialize)]
pub struct IpamConfig {
    /// A subnet in CIDR form.
    pub subnet: Option<String>,
}

/// `external: true`, or the older `external: {name: real-name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum External {
    /// `external: true` or `false`.
    Flag(bool),
    Named {
        name: Option<String>,
    },
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
    /// The object's real name, instead of `<stack>_<key>`.
    pub name: Option<String>,
    /// The driver that makes the object.
    pub driver: Option<String>,
    /// Options for the driver.
    #[serde(default)]
    pub driver_opts: BTreeMap<String, Value>,
    /// An object made outside the stack: used by its name, never created.
    #[serde(default)]
    pub external: External,
    /// Labels for the object (the stack's label is added).
    #[serde(default)]
    pub labels: Mapping,
}

/// A service's `deploy:` section: how swarm runs it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Deploy {
    /// `replicated` (the default), `global`, `replicated-job` or `global-job`.
    pub mode: Option<String>,
    /// The number of tasks of a replicated service.
    pub replicas: Option<u64>,
    /// Service labels.
    #[serde(default)]
    pub labels: Mapping,
    /// How updates roll.
    pub update_config: Option<UpdateConfig>,
    /// How rollbacks roll.
    pub rollback_config: Option<UpdateConfig>,
    /// Limits and reservations.
    #[serde(default)]
    pub resources: Resources,
    /// When tasks are restarted.
    pub restart_policy: Option<RestartPolicy>,
    /// Where tasks may go.
    #[serde(default)]
    pub placement: Placement,
    /// `vip` (the default) or `dnsrr`.
    pub endpoint_mode: Option<String>,
}

/// How updates (and rollbacks) roll through the tasks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateConfig {
    /// Tasks changed at once (default 1; 0 means all).
    pub parallelism: Option<u64>,
    /// A Go duration to wait between batches (or restarts).
    pub delay: Option<String>,
    /// `pause`, `continue` or `rollback`.
    pub failure_action: Option<String>,
    /// A Go duration to watch each task for failure after its change.
    pub monitor: Option<String>,
    /// The failure ratio tolerated during the update.
    pub max_failure_ratio: Option<f64>,
    /// `stop-first` or `start-first`.
    pub order: Option<String>,
}

/// Resource limits and reservations.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    /// What a task may use at most.
    pub limits: Option<ResourceAmounts>,
    /// What a node must have free for a task.
    pub reservations: Option<ResourceAmounts>,
}

/// CPUs and memory (and, for limits, a process count).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceAmounts {
    /// A CPU count such as `"0.5"` (docker wants a string; a plain number is taken too).
    pub cpus: Option<Scalar>,
    /// A size such as `"512M"` or a number of bytes.
    pub memory: Option<Scalar>,
    /// The most processes a task may run.
    pub pids: Option<i64>,
}

/// A value compose spells as a string but people also write as a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// A bare number.
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
    /// A Go duration to wait between batches (or restarts).
    pub delay: Option<String>,
    /// Restarts before giving up.
    pub max_attempts: Option<u64>,
    /// A Go duration to wait before deciding a restart worked.
    pub window: Option<String>,
}

/// Where tasks may go.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Placement {
    /// Node constraints such as `node.role == manager`.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// How to spread tasks over nodes.
    #[serde(default)]
    pub preferences: Vec<Preference>,
    /// The most tasks of the service on one node.
    pub max_replicas_per_node: Option<u64>,
}

/// A placement preference; spreading over a node attribute is the only kind.
#[derive(Debug, Clone, Deserialize)]
pub struct Preference {
    /// The node attribute to spread tasks over (`node.labels.zone`).
    pub spread: String,
}
