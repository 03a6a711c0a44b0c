//! `/_ping`, `/version`, `/info`: what the docker CLI asks before anything else.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method};
use bollard::models::{
    ClusterInfo, LocalNodeState, ObjectVersion, PeerNode, SwarmInfo, SystemInfo, SystemVersion,
    SystemVersionComponents, SystemVersionPlatform,
};

use super::{API_VERSION, MIN_API_VERSION};
use crate::daemon::Daemon;
use crate::daemon::host;
use crate::daemon::node::SwarmNode;
use crate::manager::Manager;

/// `GET|HEAD /_ping`: the headers tell the client which API version to speak.
pub async fn ping(State(daemon): State<Arc<Daemon>>, method: Method) -> (HeaderMap, &'static str) {
    let swarm = match daemon.swarm().await {
        None => "inactive",
        Some(node) if node.manager().is_some() => "active/manager",
        Some(_) => "active/worker",
    };
    let mut headers = HeaderMap::new();
    headers.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert("Ostype", HeaderValue::from_static("linux"));
    headers.insert("Swarm", HeaderValue::from_static(swarm));
    headers.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert("Pragma", HeaderValue::from_static("no-cache"));
    (headers, if method == Method::HEAD { "" } else { "OK" })
}

/// `GET /version`
pub async fn version() -> Json<SystemVersion> {
    let version = env!("CARGO_PKG_VERSION");
    let kernel = host::kernel_version();
    let details = serde_json::json!({
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "Arch": host::go_arch(),
        "KernelVersion": kernel,
        "Experimental": "false",
    });
    let details = serde_json::from_value(details).unwrap_or_default();
    Json(SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "shoal".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: version.into(),
            details: Some(details),
        }]),
        version: Some(version.into()),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        os: Some("linux".into()),
        arch: Some(host::go_arch().into()),
        kernel_version: Some(kernel),
        experimental: Some(false),
        ..Default::default()
    })
}

/// `GET /info`: the host, and the `Swarm` section the CLI reads this node's role from.
pub async fn info(State(daemon): State<Arc<Daemon>>) -> Json<SystemInfo> {
    let swarm = match daemon.swarm().await {
        Some(node) => node_info(&node),
        None => SwarmInfo {
            node_id: Some(String::new()),
            node_addr: Some(String::new()),
            local_node_state: Some(LocalNodeState::INACTIVE),
            control_available: Some(false),
            error: Some(String::new()),
            ..Default::default()
        },
    };
    let resources = host::resources();
    Json(SystemInfo {
        name: Some(daemon.host.hostname.clone()),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        containers: Some(0),
        containers_running: Some(0),
        containers_paused: Some(0),
        containers_stopped: Some(0),
        images: Some(0),
        driver: Some("shoal".into()),
        operating_system: Some(host::operating_system()),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        kernel_version: Some(host::kernel_version()),
        ncpu: resources.nano_cpus.map(|n| n / 1_000_000_000),
        mem_total: resources.memory_bytes,
        docker_root_dir: Some(daemon.host.data_dir.display().to_string()),
        swarm: Some(swarm),
        ..Default::default()
    })
}

fn node_info(node: &SwarmNode) -> SwarmInfo {
    match node.manager() {
        Some(manager) => manager_info(node, &manager),
        None => SwarmInfo {
            node_id: Some(node.node_id.clone()),
            node_addr: Some(node.advertise_ip.to_string()),
            local_node_state: Some(LocalNodeState::ACTIVE),
            control_available: Some(false),
            error: Some(String::new()),
            remote_managers: Some(
                node.managers()
                    .into_iter()
                    .map(|addr| PeerNode {
                        node_id: None,
                        addr: Some(addr),
                    })
                    .collect(),
            ),
            ..Default::default()
        },
    }
}

fn manager_info(node: &SwarmNode, manager: &Manager) -> SwarmInfo {
    let applied = manager.store.read();
    let state = &applied.state;
    let remote_managers: Vec<PeerNode> = state
        .nodes
        .values()
        .filter_map(|n| {
            n.manager.as_ref().map(|m| PeerNode {
                node_id: Some(n.id.clone()),
                addr: Some(m.addr.clone()),
            })
        })
        .collect();
    let managers = state.nodes.values().filter(|n| n.is_manager()).count();
    let cluster = state.cluster().map(|c| ClusterInfo {
        id: Some(c.id.clone()),
        version: Some(ObjectVersion {
            index: Some(c.meta.version),
        }),
        created_at: Some(c.meta.created_at.clone()),
        updated_at: Some(c.meta.updated_at.clone()),
        spec: Some(c.spec.clone()),
        tls_info: manager.root_ca().ok().map(|ca| ca.tls_info()),
        root_rotation_in_progress: Some(false),
        default_addr_pool: Some(c.default_addr_pool.clone()),
        subnet_size: Some(c.subnet_size),
        data_path_port: Some(u32::from(c.data_path_port)),
    });
    SwarmInfo {
        node_id: Some(node.node_id.clone()),
        node_addr: Some(node.advertise_ip.to_string()),
        local_node_state: Some(LocalNodeState::ACTIVE),
        control_available: Some(true),
        error: Some(String::new()),
        remote_managers: Some(remote_managers),
        nodes: Some(state.nodes.len() as i64),
        managers: Some(managers as i64),
        cluster,
    }
}
