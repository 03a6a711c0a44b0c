//! This node's membership in a swarm: creating one, coming back after a restart, leaving.
//!
//! Everything lives under `<data-dir>/swarm/`: the node's certificates, the Raft database, and
//! `state.json`, written last at init and removed first at leave, so its presence means a
//! complete membership and a crash half-way through init or leave leaves nothing that counts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{
    EngineDescription, NodeDescription, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum,
    NodeState, NodeStatus, SwarmInitRequest, SwarmSpec, SwarmSpecCaConfig, SwarmSpecDispatcher,
    SwarmSpecOrchestration, SwarmSpecRaft,
};
use serde::{Deserialize, Serialize};

use super::host;
use crate::fsutil;
use crate::pki::{self, JoinToken, NodeCredentials, NodeKey, Role, RootCa};
use crate::store::{
    Change, Cluster, ManagerRecord, Meta, Node, Object, Precondition, Proposal, RaftId, RaftPeer,
    RootCaMaterial, Store,
};

/// Swarm's control port.
pub const CONTROL_PORT: u16 = 2377;
/// Swarm's default VXLAN port.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;
/// How long a starting manager waits for Raft to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Node certificates last 90 days unless the swarm spec says otherwise.
const DEFAULT_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Why a membership change was refused; each message is docker's own.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// `swarm init` on a node that is in a swarm.
    #[error(
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one."
    )]
    AlreadyInSwarm,
    /// A swarm operation on a node that is not in one.
    #[error("This node is not part of a swarm")]
    NotInSwarm,
    /// `swarm leave` on a manager without `--force`.
    #[error(
        "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message."
    )]
    ManagerNeedsForce,
    /// A request parameter is wrong; the message says which and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something failed inside the daemon.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<pki::PkiError> for SwarmError {
    fn from(e: pki::PkiError) -> Self {
        SwarmError::Internal(e.into())
    }
}

/// What a node keeps about its own membership.
#[derive(Debug, Serialize, Deserialize)]
struct LocalState {
    node_id: String,
    raft_id: RaftId,
    advertise_addr: IpAddr,
    listen_addr: SocketAddr,
}

/// This node as a manager of a swarm.
pub struct Manager {
    /// The node's ID (the CN of its certificate).
    pub node_id: String,
    /// The node's Raft member ID.
    pub raft_id: RaftId,
    /// The address other nodes reach this one at.
    pub advertise_addr: IpAddr,
    /// Where the control endpoint listens.
    pub listen_addr: SocketAddr,
    /// The replicated store.
    pub store: Store,
    /// The swarm's root CA, parsed once from the store.
    pub root_ca: RootCa,
}

impl Manager {
    /// `advertise_addr:2377`, the address managers are listed under.
    pub fn control_addr(&self) -> String {
        SocketAddr::new(self.advertise_addr, CONTROL_PORT).to_string()
    }

    /// Whether this manager leads Raft now.
    pub fn is_leader(&self) -> bool {
        self.store.leader() == Some(self.raft_id)
    }
}

fn swarm_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("swarm")
}

fn state_file(data_dir: &Path) -> PathBuf {
    swarm_dir(data_dir).join("state.json")
}

fn certificates_dir(data_dir: &Path) -> PathBuf {
    swarm_dir(data_dir).join("certificates")
}

fn raft_dir(data_dir: &Path) -> PathBuf {
    swarm_dir(data_dir).join("raft")
}

/// Brings back the membership this node had before a restart, if any. A leftover of an init that
/// never finished is removed.
pub async fn restore(data_dir: &Path) -> anyhow::Result<Option<Manager>> {
    let state_path = state_file(data_dir);
    let Ok(bytes) = std::fs::read(&state_path) else {
        if swarm_dir(data_dir).exists() {
            tracing::warn!("removing swarm state left by an init or leave that did not finish");
            remove_swarm_state(data_dir)?;
        }
        return Ok(None);
    };
    let state: LocalState = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is corrupt ({e}); move it away to leave the swarm",
            state_path.display()
        )
    })?;
    let store = Store::open(&raft_dir(data_dir), state.raft_id).await?;
    if let Err(e) = store.wait_for_leader(LEADER_WAIT).await {
        tracing::warn!("no Raft leader yet after restart: {e}");
    }
    let root_ca = {
        let applied = store.read();
        let cluster = applied
            .state
            .cluster()
            .ok_or_else(|| anyhow::anyhow!("the store holds no swarm"))?;
        RootCa::from_pem(&cluster.root_ca.cert_pem, &cluster.root_ca.key_pem)?
    };
    Ok(Some(Manager {
        node_id: state.node_id,
        raft_id: state.raft_id,
        advertise_addr: state.advertise_addr,
        listen_addr: state.listen_addr,
        store,
        root_ca,
    }))
}

fn remove_swarm_state(data_dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(swarm_dir(data_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// The settings of a new swarm, checked.
struct InitSettings {
    advertise_addr: IpAddr,
    listen_addr: SocketAddr,
    default_addr_pool: Vec<String>,
    subnet_size: u32,
    data_path_port: u16,
    availability: NodeSpecAvailabilityEnum,
    spec: SwarmSpec,
}

impl InitSettings {
    fn from_request(request: SwarmInitRequest) -> Result<Self, SwarmError> {
        let listen_addr = parse_listen_addr(request.listen_addr.as_deref().unwrap_or(""))?;
        let advertise_addr = match request.advertise_addr.as_deref().filter(|a| !a.is_empty()) {
            Some(addr) => parse_advertise_addr(addr)?,
            None if !listen_addr.ip().is_unspecified() => listen_addr.ip(),
            None => only_interface_address()?,
        };
        let data_path_port = match request.data_path_port.unwrap_or(0) {
            0 => DEFAULT_DATA_PATH_PORT,
            port @ 1024..=49151 => port as u16,
            port => {
                return Err(invalid(format!(
                    "data path port {port} must be within range 1024 to 49151"
                )));
            }
        };
        let pools = request.default_addr_pool.unwrap_or_default();
        let default_addr_pool = if pools.is_empty() {
            vec!["10.0.0.0/8".to_string()]
        } else {
            pools
        };
        let subnet_size = request.subnet_size.filter(|&s| s != 0).unwrap_or(24);
        for pool in &default_addr_pool {
            let net: ipnetwork::Ipv4Network = pool
                .parse()
                .map_err(|e| invalid(format!("invalid default address pool {pool}: {e}")))?;
            if u32::from(net.prefix()) > subnet_size || subnet_size > 29 {
                return Err(invalid(format!(
                    "invalid subnet size {subnet_size} for pool {pool}: it must be between the pool's prefix length and 29"
                )));
            }
        }
        Ok(InitSettings {
            advertise_addr,
            listen_addr,
            default_addr_pool,
            subnet_size,
            data_path_port,
            availability: NodeSpecAvailabilityEnum::ACTIVE,
            spec: with_defaults(request.spec.unwrap_or_default()),
        })
    }
}

fn invalid(message: String) -> SwarmError {
    SwarmError::InvalidArgument(message)
}

/// `0.0.0.0:2377` style; a missing port means 2377, as docker.
fn parse_listen_addr(addr: &str) -> Result<SocketAddr, SwarmError> {
    if addr.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], CONTROL_PORT)));
    }
    if let Ok(socket) = addr.parse() {
        return Ok(socket);
    }
    let ip = resolve_ip(addr).map_err(|_| invalid(format!("invalid listen address {addr}")))?;
    Ok(SocketAddr::new(ip, CONTROL_PORT))
}

/// An IP, `IP:port` or an interface name, as `--advertise-addr` accepts.
fn parse_advertise_addr(addr: &str) -> Result<IpAddr, SwarmError> {
    let host = addr
        .parse::<SocketAddr>()
        .map(|s| s.ip().to_string())
        .unwrap_or_else(|_| addr.to_string());
    let ip = resolve_ip(&host).map_err(|_| {
        invalid(format!("advertise address must be a non-zero IP address or network interface (with optional port number), not {addr}"))
    })?;
    if ip.is_unspecified() {
        return Err(invalid(format!(
            "advertise address must be a non-zero IP address, not {addr}"
        )));
    }
    Ok(ip)
}

fn resolve_ip(host: &str) -> Result<IpAddr, ()> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let addrs = host::interface_addresses();
    let mut on_interface = addrs
        .iter()
        .filter(|(name, _)| name == host)
        .map(|(_, ip)| *ip);
    match (on_interface.next(), on_interface.next()) {
        (Some(ip), None) => Ok(ip),
        _ => Err(()),
    }
}

/// Docker's choice when no address is given: the one address of the one interface.
fn only_interface_address() -> Result<IpAddr, SwarmError> {
    let addrs = host::interface_addresses();
    match addrs.as_slice() {
        [(_, ip)] => Ok(*ip),
        [] => Err(invalid(
            "could not find the system's IP address - specify one with --advertise-addr".into(),
        )),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|(name, ip)| format!("{ip} on {name}"))
                .collect();
            Err(invalid(format!(
                "could not choose an IP address to advertise since this system has multiple addresses on different interfaces ({}) - specify one with --advertise-addr",
                list.join(" and ")
            )))
        }
    }
}

/// Fills what the request left zero with Swarm's defaults.
fn with_defaults(mut spec: SwarmSpec) -> SwarmSpec {
    if spec.name.as_deref().is_none_or(str::is_empty) {
        spec.name = Some("default".into());
    }
    spec.labels.get_or_insert_with(HashMap::new);
    let orchestration = spec
        .orchestration
        .get_or_insert_with(SwarmSpecOrchestration::default);
    orchestration.task_history_retention_limit.get_or_insert(5);
    let raft = spec.raft.get_or_insert_with(SwarmSpecRaft::default);
    raft.snapshot_interval = Some(raft.snapshot_interval.filter(|&n| n > 0).unwrap_or(10_000));
    raft.keep_old_snapshots.get_or_insert(0);
    raft.log_entries_for_slow_followers = Some(
        raft.log_entries_for_slow_followers
            .filter(|&n| n > 0)
            .unwrap_or(500),
    );
    raft.election_tick = Some(raft.election_tick.filter(|&n| n > 0).unwrap_or(10));
    raft.heartbeat_tick = Some(raft.heartbeat_tick.filter(|&n| n > 0).unwrap_or(1));
    let dispatcher = spec
        .dispatcher
        .get_or_insert_with(SwarmSpecDispatcher::default);
    dispatcher.heartbeat_period = Some(
        dispatcher
            .heartbeat_period
            .filter(|&n| n > 0)
            .unwrap_or(5_000_000_000),
    );
    let ca = spec
        .ca_config
        .get_or_insert_with(SwarmSpecCaConfig::default);
    ca.node_cert_expiry = Some(
        ca.node_cert_expiry
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_CERT_EXPIRY.as_nanos() as i64),
    );
    spec
}

/// Creates a new swarm with this node as its only manager.
pub async fn init(
    data_dir: &Path,
    hostname: &str,
    request: SwarmInitRequest,
) -> Result<Manager, SwarmError> {
    let settings = InitSettings::from_request(request)?;
    let result = create(data_dir, hostname, settings).await;
    if result.is_err() {
        // Whatever was written belongs to an init that did not happen.
        remove_swarm_state(data_dir)?;
    }
    result
}

async fn create(
    data_dir: &Path,
    hostname: &str,
    settings: InitSettings,
) -> Result<Manager, SwarmError> {
    let node_id = pki::new_id();
    let cluster_id = pki::new_id();
    let raft_id = loop {
        let id = rand::random::<u64>();
        if id != 0 {
            break id;
        }
    };
    let cert_expiry = settings
        .spec
        .ca_config
        .as_ref()
        .and_then(|ca| ca.node_cert_expiry)
        .unwrap_or_default();
    let ca = RootCa::generate()?;
    let key = NodeKey::generate()?;
    let cert_pem = ca.sign_csr(
        &key.csr_pem()?,
        &node_id,
        Role::Manager,
        &cluster_id,
        Duration::from_nanos(cert_expiry.max(0) as u64),
    )?;
    let credentials = NodeCredentials {
        ca_cert_pem: ca.cert_pem().into(),
        cert_pem,
        key_pem: key.key_pem(),
    };
    credentials.save(&certificates_dir(data_dir))?;

    let manager_addr = SocketAddr::new(settings.advertise_addr, CONTROL_PORT).to_string();
    let store = Store::open(&raft_dir(data_dir), raft_id).await?;
    let peer = RaftPeer {
        addr: manager_addr.clone(),
        node_id: node_id.clone(),
    };
    let founded = async {
        store.bootstrap(raft_id, peer).await?;
        store.wait_for_leader(LEADER_WAIT).await?;
        let digest = ca.digest();
        let cluster = Cluster {
            id: cluster_id.clone(),
            meta: Meta::now(),
            spec: settings.spec.clone(),
            root_ca: RootCaMaterial {
                cert_pem: ca.cert_pem().into(),
                key_pem: ca.key_pem().into(),
            },
            worker_token: JoinToken::generate(&digest).to_string(),
            manager_token: JoinToken::generate(&digest).to_string(),
            default_addr_pool: settings.default_addr_pool.clone(),
            subnet_size: settings.subnet_size,
            data_path_port: settings.data_path_port,
        };
        let node = Node {
            id: node_id.clone(),
            meta: Meta::now(),
            spec: NodeSpec {
                labels: Some(HashMap::new()),
                role: Some(NodeSpecRoleEnum::MANAGER),
                availability: Some(settings.availability),
                ..Default::default()
            },
            description: NodeDescription {
                hostname: Some(hostname.into()),
                platform: Some(host::platform()),
                resources: Some(host::resources()),
                engine: Some(EngineDescription {
                    engine_version: Some(env!("CARGO_PKG_VERSION").into()),
                    ..Default::default()
                }),
                tls_info: Some(ca.tls_info()),
            },
            status: NodeStatus {
                state: Some(NodeState::READY),
                addr: Some(settings.advertise_addr.to_string()),
                ..Default::default()
            },
            manager: Some(ManagerRecord {
                raft_id,
                addr: manager_addr,
            }),
        };
        let changes = [Object::Cluster(cluster), Object::Node(node)]
            .into_iter()
            .map(|object| Change::Put {
                object,
                precondition: Precondition::Absent,
            })
            .collect();
        store.propose(Proposal { changes }).await?;
        let state = LocalState {
            node_id: node_id.clone(),
            raft_id,
            advertise_addr: settings.advertise_addr,
            listen_addr: settings.listen_addr,
        };
        fsutil::write_atomic(
            &state_file(data_dir),
            &serde_json::to_vec_pretty(&state)?,
            0o600,
        )?;
        anyhow::Ok(())
    };
    if let Err(e) = founded.await {
        store.shutdown().await;
        return Err(e.into());
    }
    Ok(Manager {
        node_id,
        raft_id,
        advertise_addr: settings.advertise_addr,
        listen_addr: settings.listen_addr,
        store,
        root_ca: ca,
    })
}

/// Leaves the swarm: stops Raft and erases this node's swarm state.
pub async fn leave(data_dir: &Path, manager: &Manager, force: bool) -> Result<(), SwarmError> {
    if !force {
        return Err(SwarmError::ManagerNeedsForce);
    }
    manager.store.shutdown().await;
    // The marker goes first: from here on a crash leaves only leftovers that restore() removes.
    std::fs::remove_file(state_file(data_dir)).map_err(anyhow::Error::from)?;
    remove_swarm_state(data_dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(advertise: &str) -> SwarmInitRequest {
        SwarmInitRequest {
            advertise_addr: Some(advertise.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_match_swarm() {
        let settings = InitSettings::from_request(request("192.0.2.1")).unwrap();
        assert_eq!(settings.listen_addr, "0.0.0.0:2377".parse().unwrap());
        assert_eq!(settings.data_path_port, 4789);
        assert_eq!(settings.default_addr_pool, vec!["10.0.0.0/8"]);
        assert_eq!(settings.subnet_size, 24);
        let raft = settings.spec.raft.unwrap();
        assert_eq!(
            (raft.election_tick, raft.heartbeat_tick),
            (Some(10), Some(1))
        );
        assert_eq!(
            settings.spec.dispatcher.unwrap().heartbeat_period,
            Some(5_000_000_000)
        );
    }

    #[test]
    fn advertise_address_may_carry_a_port() {
        let settings = InitSettings::from_request(request("192.0.2.1:2377")).unwrap();
        assert_eq!(
            settings.advertise_addr,
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bad_settings_are_refused_with_reasons() {
        let err = |r: SwarmInitRequest| InitSettings::from_request(r).err().unwrap().to_string();
        assert!(err(request("0.0.0.0")).contains("non-zero IP address"));
        assert!(err(request("no-such-interface")).contains("network interface"));
        let port = SwarmInitRequest {
            data_path_port: Some(80),
            ..request("192.0.2.1")
        };
        assert!(err(port).contains("1024 to 49151"));
        let pool = SwarmInitRequest {
            default_addr_pool: Some(vec!["10.0.0.0/33".into()]),
            ..request("192.0.2.1")
        };
        assert!(err(pool).contains("invalid default address pool"));
    }

    #[tokio::test]
    async fn init_restore_and_leave() {
        let dir = tempfile::tempdir().unwrap();
        let manager = init(dir.path(), "h1", request("192.0.2.1")).await.unwrap();
        assert!(manager.is_leader());
        let (cluster_id, node) = {
            let applied = manager.store.read();
            (
                applied.state.cluster().unwrap().id.clone(),
                applied.state.nodes[&manager.node_id].clone(),
            )
        };
        assert_eq!(node.description.hostname.as_deref(), Some("h1"));
        manager.store.shutdown().await;
        drop(manager);

        let manager = restore(dir.path()).await.unwrap().unwrap();
        assert_eq!(manager.node_id, node.id);
        assert_eq!(manager.store.read().state.cluster().unwrap().id, cluster_id);
        leave(dir.path(), &manager, true).await.unwrap();
        drop(manager);
        assert!(restore(dir.path()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn half_made_swarm_state_is_removed_on_restore() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(certificates_dir(dir.path())).unwrap();
        assert!(restore(dir.path()).await.unwrap().is_none());
        assert!(!swarm_dir(dir.path()).exists());
    }
}
