//! This node's membership in a swarm: creating one, joining one, coming back after a restart,
//! changing role, leaving.
//!
//! Everything lives under `<data-dir>/swarm/`: the node's certificates, the Raft database (on
//! managers), and `state.json`, written last when the node joins and removed first when it
//! leaves, so its presence means a complete membership; a crash half-way leaves nothing that
//! counts, and the next start removes the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{
    EngineDescription, NodeDescription, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum,
    NodeState, NodeStatus, SwarmInitRequest, SwarmJoinRequest,
};

use super::host;
use super::node::{
    Host, JOIN_TIMEOUT, LocalState, Membership, SwarmNode, certificates_dir, new_raft_id,
    node_from, remove_dir, state_file, swarm_dir,
};
use super::settings::{InitSettings, JoinSettings, route_source};
use crate::manager::ipam;
use crate::pki::{self, JoinToken, NodeCredentials, NodeKey, Role, RootCa};
use crate::rpc::proto::{Failure, JoinRequest, Request, Response};
use crate::rpc::{Connection, anonymous_client_config, bootstrap_client_config};
use crate::store::{
    Change, Cluster, ManagerRecord, Meta, Node, Object, Precondition, Proposal, RaftPeer,
    RootCaMaterial,
};

/// How long a starting manager waits for Raft to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Why a membership change was refused; each message is docker's own.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// `swarm init` or `join` on a node that is in a swarm.
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
    /// A request parameter is wrong, or the swarm refused it; the message says why.
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

/// Brings back the membership this node had before a restart, if any. The leftovers of a join
/// or leave that never finished are removed.
pub async fn restore(host: &Host) -> anyhow::Result<Option<Arc<SwarmNode>>> {
    let data_dir = host.data_dir.as_path();
    let state_path = state_file(data_dir);
    let Ok(bytes) = std::fs::read(&state_path) else {
        if swarm_dir(data_dir).exists() {
            tracing::warn!("removing swarm state left by a join or leave that did not finish");
            remove_dir(&swarm_dir(data_dir))?;
        }
        return Ok(None);
    };
    let state: LocalState = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is corrupt ({e}); move it away to leave the swarm",
            state_path.display()
        )
    })?;
    let credentials = NodeCredentials::load(&certificates_dir(data_dir))?.ok_or_else(|| {
        anyhow::anyhow!(
            "the node's certificates are missing from {}",
            data_dir.display()
        )
    })?;
    let node = node_from(
        host,
        Membership {
            node_id: state.node_id,
            credentials,
            advertise_ip: state.advertise_ip,
            advertise_port: state.advertise_port,
            listen_addr: state.listen_addr,
            managers: state.managers,
        },
    )?;
    if let Some(raft_id) = state.raft_id {
        let manager = node.start_manager(raft_id).await?;
        if let Err(e) = manager.store.wait_for_leader(LEADER_WAIT).await {
            tracing::warn!("no Raft leader yet after restart: {e}");
        }
        node.set_manager(Some(manager));
    }
    node.start_agent();
    Ok(Some(node))
}

/// Creates a new swarm with this node as its only manager.
pub async fn init(host: &Host, request: SwarmInitRequest) -> Result<Arc<SwarmNode>, SwarmError> {
    let data_dir = host.data_dir.as_path();
    let settings = InitSettings::from_request(request)?;
    let result = create(host, settings).await;
    if result.is_err() {
        // Whatever was written belongs to an init that did not happen.
        remove_dir(&swarm_dir(data_dir))?;
    }
    result
}

async fn create(host: &Host, settings: InitSettings) -> Result<Arc<SwarmNode>, SwarmError> {
    let (data_dir, hostname) = (host.data_dir.as_path(), host.hostname.as_str());
    let node_id = pki::new_id();
    let cluster_id = pki::new_id();
    let raft_id = new_raft_id();
    let ca = RootCa::generate()?;
    let key = NodeKey::generate()?;
    let expiry = settings
        .spec
        .ca_config
        .as_ref()
        .and_then(|ca| ca.node_cert_expiry)
        .unwrap_or_default();
    let validity = Duration::from_nanos(expiry.max(0) as u64);
    let cert_pem = ca.sign_csr(
        &key.csr_pem()?,
        &node_id,
        Role::Manager,
        &cluster_id,
        validity,
    )?;
    let credentials = NodeCredentials {
        ca_cert_pem: ca.cert_pem().into(),
        cert_pem,
        key_pem: key.key_pem(),
    };
    credentials.save(&certificates_dir(data_dir))?;
    let node = node_from(
        host,
        Membership {
            node_id: node_id.clone(),
            credentials,
            advertise_ip: settings.advertise.ip,
            advertise_port: settings.advertise.port,
            listen_addr: settings.listen_addr,
            managers: Vec::new(),
        },
    )?;
    let manager = node.start_manager(raft_id).await?;
    let control_addr = manager.control_addr.to_string();
    let founded = async {
        let store = &manager.store;
        store
            .bootstrap(
                raft_id,
                RaftPeer {
                    addr: control_addr.clone(),
                    node_id: node_id.clone(),
                },
            )
            .await?;
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
        let me = Node {
            id: node_id.clone(),
            meta: Meta::now(),
            spec: NodeSpec {
                labels: Some(HashMap::new()),
                role: Some(NodeSpecRoleEnum::MANAGER),
                availability: Some(settings.availability),
                ..Default::default()
            },
            description: NodeDescription {
                tls_info: Some(ca.tls_info()),
                ..describe(hostname)
            },
            status: NodeStatus {
                state: Some(NodeState::READY),
                addr: Some(settings.advertise.ip.to_string()),
                ..Default::default()
            },
            manager: Some(ManagerRecord {
                raft_id,
                addr: control_addr.clone(),
                reachable: true,
            }),
            ingress: None,
            balancers: Vec::new(),
        };
        // The routing mesh's network comes with the swarm, as in docker.
        let ingress = ipam::ingress_network(pki::new_id(), &cluster)
            .map_err(|e| SwarmError::InvalidArgument(e.to_string()))?;
        let changes = [
            Object::Cluster(cluster),
            Object::Node(me),
            Object::Network(ingress),
        ]
        .into_iter()
        .map(|object| Change::Put {
            object,
            precondition: Precondition::Absent,
        })
        .collect();
        store.propose(Proposal { changes }).await?;
        *node.managers.lock().unwrap_or_else(|p| p.into_inner()) = vec![control_addr.clone()];
        node.set_manager(Some(manager.clone()));
        node.save_state()
    };
    if let Err(e) = founded.await {
        manager.shutdown().await;
        return Err(e.into());
    }
    node.start_agent();
    Ok(node)
}

/// What this node reports about itself when it joins.
fn describe(hostname: &str) -> NodeDescription {
    NodeDescription {
        hostname: Some(hostname.into()),
        platform: Some(host::platform()),
        resources: Some(host::resources()),
        engine: Some(EngineDescription {
            engine_version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Default::default()
        }),
        tls_info: None,
    }
}

/// Joins an existing swarm through one of its managers, as a worker or a manager as the token
/// says.
pub async fn join(
    host: &Host,
    request: SwarmJoinRequest,
    availability: Option<NodeSpecAvailabilityEnum>,
) -> Result<Arc<SwarmNode>, SwarmError> {
    let data_dir = host.data_dir.as_path();
    let settings = JoinSettings::from_request(request, availability)?;
    let result = enter(host, settings).await;
    if result.is_err() {
        remove_dir(&swarm_dir(data_dir))?;
    }
    result
}

async fn enter(host: &Host, settings: JoinSettings) -> Result<Arc<SwarmNode>, SwarmError> {
    let (data_dir, hostname) = (host.data_dir.as_path(), host.hostname.as_str());
    let token: JoinToken = settings
        .token
        .parse()
        .map_err(|e: pki::PkiError| SwarmError::InvalidArgument(e.to_string()))?;
    let ca_pem = fetch_root_ca(&settings.remote, &token).await?;
    let advertise_ip = match settings.advertise {
        Some(advertise) => advertise.ip,
        None => route_source(&settings.remote)?,
    };
    let advertise_port = settings.advertise.and_then(|a| a.port);
    let key = NodeKey::generate()?;
    let request = Request::Join(JoinRequest {
        token: settings.token.clone(),
        csr_pem: key.csr_pem()?,
        description: describe(hostname),
        advertise_addr: advertise_ip.to_string(),
        availability: settings.availability,
    });
    let mut connection = Connection::connect(
        &settings.remote,
        anonymous_client_config(&ca_pem).map_err(|e| SwarmError::Internal(e.into()))?,
        JOIN_TIMEOUT,
    )
    .await
    .map_err(|e| unreachable_manager(&settings.remote, e))?;
    let joined = match connection
        .call::<Request, Response>(&request, JOIN_TIMEOUT)
        .await
    {
        Ok(Response::Joined(joined)) => joined,
        Ok(Response::Failed(Failure::Denied(reason) | Failure::Invalid(reason))) => {
            return Err(SwarmError::InvalidArgument(reason));
        }
        Ok(other) => {
            return Err(SwarmError::Internal(anyhow::anyhow!(
                "the manager could not admit this node: {other:?}"
            )));
        }
        Err(e) => return Err(unreachable_manager(&settings.remote, e)),
    };
    let credentials = NodeCredentials {
        ca_cert_pem: ca_pem,
        cert_pem: joined.cert_pem,
        key_pem: key.key_pem(),
    };
    credentials.save(&certificates_dir(data_dir))?;
    let managers = if joined.managers.is_empty() {
        vec![settings.remote.clone()]
    } else {
        joined.managers
    };
    let node = node_from(
        host,
        Membership {
            node_id: joined.node_id.clone(),
            credentials,
            advertise_ip,
            advertise_port,
            listen_addr: settings.listen_addr,
            managers,
        },
    )?;
    if joined.manager {
        node.become_manager().await?;
    } else {
        node.save_state()?;
    }
    node.start_agent();
    tracing::info!(node = %joined.node_id, manager = joined.manager, "joined the swarm");
    Ok(node)
}

/// Fetches the manager's root CA without trusting it yet, and trusts it only if it is the CA
/// the token names.
async fn fetch_root_ca(remote: &str, token: &JoinToken) -> Result<String, SwarmError> {
    let mut connection = Connection::connect(
        remote,
        bootstrap_client_config().map_err(|e| SwarmError::Internal(e.into()))?,
        JOIN_TIMEOUT,
    )
    .await
    .map_err(|e| unreachable_manager(remote, e))?;
    let cert_pem = match connection
        .call::<Request, Response>(&Request::RootCa, JOIN_TIMEOUT)
        .await
    {
        Ok(Response::RootCa { cert_pem }) => cert_pem,
        Ok(other) => {
            return Err(SwarmError::Internal(anyhow::anyhow!(
                "unexpected answer to a CA request: {other:?}"
            )));
        }
        Err(e) => return Err(unreachable_manager(remote, e)),
    };
    if !token.ca_matches(&cert_pem) {
        let expected: String = token
            .ca_digest()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return Err(SwarmError::InvalidArgument(format!(
            "remote CA does not match fingerprint. Expected: {expected}"
        )));
    }
    Ok(cert_pem)
}

fn unreachable_manager(remote: &str, e: impl std::fmt::Display) -> SwarmError {
    SwarmError::InvalidArgument(format!("cannot reach the manager at {remote}: {e}"))
}

/// Leaves the swarm: stops the agent (and Raft) and erases this node's swarm state.
pub async fn leave(node: &SwarmNode, force: bool) -> Result<(), SwarmError> {
    let data_dir = node.data_dir.as_path();
    if node.manager().is_some() && !force {
        return Err(SwarmError::ManagerNeedsForce);
    }
    node.shutdown().await;
    // A node out of the swarm runs none of its tasks (moby removes them too).
    for task_id in node.executor.list().await.unwrap_or_default() {
        if let Err(e) = node.executor.remove(&task_id).await {
            tracing::warn!(task = %task_id, "cannot remove a task of the swarm this node left: {e}");
        }
    }
    node.network.leave().await;
    // The marker goes first: from here on a crash leaves only leftovers that restore() removes.
    std::fs::remove_file(state_file(data_dir)).map_err(anyhow::Error::from)?;
    remove_dir(&swarm_dir(data_dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn host(dir: &Path) -> Host {
        let executor = crate::exec::ProcessExecutor::new(dir.join("tasks")).unwrap();
        Host {
            data_dir: dir.to_path_buf(),
            hostname: "h1".into(),
            executor: Arc::new(executor),
            data_plane: false,
        }
    }

    fn request(advertise: &str) -> SwarmInitRequest {
        SwarmInitRequest {
            advertise_addr: Some(advertise.into()),
            listen_addr: Some("127.0.0.1:0".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn init_restore_and_leave() {
        let dir = tempfile::tempdir().unwrap();
        let node = init(&host(dir.path()), request("127.0.0.1")).await.unwrap();
        let manager = node.manager().unwrap();
        assert!(manager.is_leader());
        let (cluster_id, me) = {
            let applied = manager.store.read();
            (
                applied.state.cluster().unwrap().id.clone(),
                applied.state.nodes[&node.node_id].clone(),
            )
        };
        assert_eq!(me.description.hostname.as_deref(), Some("h1"));
        node.shutdown().await;
        drop((node, manager));

        let node = restore(&host(dir.path())).await.unwrap().unwrap();
        assert_eq!(node.node_id, me.id);
        assert_eq!(node.manager().unwrap().cluster().unwrap().id, cluster_id);
        leave(&node, true).await.unwrap();
        drop(node);
        assert!(restore(&host(dir.path())).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn half_made_swarm_state_is_removed_on_restore() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(certificates_dir(dir.path())).unwrap();
        assert!(restore(&host(dir.path())).await.unwrap().is_none());
        assert!(!swarm_dir(dir.path()).exists());
    }
}
