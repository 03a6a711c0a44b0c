//! The certificate authority's side of joining and renewal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::models::{
    NodeDescription, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState, NodeStatus,
};

use super::Manager;
use crate::pki::{self, Role, tokens_equal};
use crate::rpc::proto::{Failure, JoinRequest, Joined};
use crate::store::{Cluster, Meta, Node, Object, Proposal};

/// Docker's answer to a wrong join token.
pub const INVALID_TOKEN: &str = "A valid join token is necessary to join this cluster";

/// Admits a node that presented a valid token: a new node ID, a certificate, a node object.
pub async fn join(manager: &Manager, request: JoinRequest) -> Result<Joined, Failure> {
    let cluster = manager
        .cluster()
        .ok_or_else(|| Failure::Internal("this manager has no swarm state yet".into()))?;
    // Compare against both tokens every time, so timing tells nothing about either.
    let is_worker = tokens_equal(&request.token, &cluster.worker_token);
    let is_manager = tokens_equal(&request.token, &cluster.manager_token);
    if !(is_worker || is_manager) {
        return Err(Failure::Denied(INVALID_TOKEN.into()));
    }
    let addr = advertised_ip(&request.advertise_addr)?;
    let node_id = pki::new_id();
    let role = if is_manager {
        Role::Manager
    } else {
        Role::Worker
    };
    let cert_pem = sign(manager, &cluster, &request.csr_pem, &node_id, role)?;
    let node = Node {
        id: node_id.clone(),
        meta: Meta::now(),
        spec: NodeSpec {
            labels: Some(HashMap::new()),
            role: Some(if is_manager {
                NodeSpecRoleEnum::MANAGER
            } else {
                NodeSpecRoleEnum::WORKER
            }),
            availability: Some(availability_of(request.availability)),
            ..Default::default()
        },
        description: NodeDescription {
            tls_info: Some(manager.root_ca().map_err(internal)?.tls_info()),
            ..request.description
        },
        status: NodeStatus {
            state: Some(NodeState::READY),
            addr: Some(addr.to_string()),
            ..Default::default()
        },
        manager: None,
        ingress: None,
        balancers: Vec::new(),
    };
    manager
        .propose(Proposal::create(Object::Node(node)))
        .await
        .map_err(internal)?;
    tracing::info!(node = %node_id, manager = is_manager, "node joined");
    Ok(Joined {
        node_id,
        cert_pem,
        manager: is_manager,
        managers: manager.manager_addrs(),
    })
}

/// The availability a joining node asked for; the docker CLI sends `""` when the flag is not
/// given, which means active.
fn availability_of(asked: Option<NodeSpecAvailabilityEnum>) -> NodeSpecAvailabilityEnum {
    asked
        .filter(|a| *a != NodeSpecAvailabilityEnum::EMPTY)
        .unwrap_or(NodeSpecAvailabilityEnum::ACTIVE)
}

/// A fresh certificate for a member, with the role the store gives it now.
pub fn renew(manager: &Manager, node_id: &str, csr_pem: &str) -> Result<String, Failure> {
    let cluster = manager
        .cluster()
        .ok_or_else(|| Failure::Internal("this manager has no swarm state yet".into()))?;
    let is_manager = manager.node_is_manager(node_id);
    let role = if is_manager {
        Role::Manager
    } else {
        Role::Worker
    };
    sign(manager, &cluster, csr_pem, node_id, role)
}

fn sign(
    manager: &Manager,
    cluster: &Cluster,
    csr_pem: &str,
    node_id: &str,
    role: Role,
) -> Result<String, Failure> {
    let expiry = cluster
        .spec
        .ca_config
        .as_ref()
        .and_then(|ca| ca.node_cert_expiry)
        .unwrap_or(0);
    let validity = Duration::from_nanos(expiry.max(0) as u64).max(pki::MIN_NODE_CERT_VALIDITY);
    let ca = manager.root_ca().map_err(internal)?;
    ca.sign_csr(csr_pem, node_id, role, &cluster.id, validity)
        .map_err(|e| Failure::Invalid(e.to_string()))
}

/// The IP part of `ip` or `ip:port`.
fn advertised_ip(addr: &str) -> Result<IpAddr, Failure> {
    addr.parse::<IpAddr>()
        .or_else(|_| addr.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .map_err(|_| Failure::Invalid(format!("invalid advertise address {addr}")))
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_without_availability_makes_an_active_node() {
        assert_eq!(availability_of(None), NodeSpecAvailabilityEnum::ACTIVE);
        assert_eq!(
            availability_of(Some(NodeSpecAvailabilityEnum::EMPTY)),
            NodeSpecAvailabilityEnum::ACTIVE
        );
        assert_eq!(
            availability_of(Some(NodeSpecAvailabilityEnum::DRAIN)),
            NodeSpecAvailabilityEnum::DRAIN
        );
    }
}
