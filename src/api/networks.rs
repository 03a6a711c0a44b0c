//! `/networks`: create, list, inspect and remove the swarm's overlay networks, shown as docker
//! shows swarm-scope overlays; and the swarm network object tasks show in
//! `NetworksAttachments`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bollard::models::{
    IpamConfig, NetworkCreateRequest, NetworkCreateResponse, ObjectVersion, TaskState,
};
use serde::{Deserialize, Serialize};

use super::body::{Filters, JsonBody};
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;
use crate::daemon::swarm::SwarmError;
use crate::manager::ipam::{self, IpamError, VXLANID_OPTION};
use crate::net::overlay::{EngineDrops, NetworkStats};
use crate::pki;
use crate::store::{ClusterState, Kind, Network, Object, ObjectKey, Proposal, TaskNetwork};

/// The only driver shoal's networks have.
const OVERLAY: &str = "overlay";
/// The only IPAM driver there is.
const DEFAULT_IPAM: &str = "default";

/// A network as `GET /networks` and `docker network inspect` show it (bollard's model leaves
/// out the nulls docker prints, and `Containers`).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkView {
    name: String,
    #[serde(rename = "Id")]
    id: String,
    created: String,
    scope: String,
    driver: String,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: IpamView,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_from: ConfigFrom,
    config_only: bool,
    containers: Option<BTreeMap<String, serde_json::Value>>,
    options: BTreeMap<String, String>,
    labels: Option<HashMap<String, String>>,
}

/// A network's IPAM settings as docker shows them.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamView {
    driver: String,
    options: Option<HashMap<String, String>>,
    config: Vec<IpamConfig>,
}

/// The network a config-only network's settings come from (never any, here).
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigFrom {
    network: String,
}

/// The subnet and gateway of `network`, as both views show them.
fn ipam_configs(network: &Network) -> Vec<IpamConfig> {
    vec![IpamConfig {
        subnet: Some(network.subnet.to_string()),
        gateway: Some(network.gateway.to_string()),
        ..Default::default()
    }]
}

/// The driver options docker shows: the user's, and the VNI the overlay driver chose.
fn driver_options(network: &Network) -> BTreeMap<String, String> {
    let mut options: BTreeMap<String, String> = network
        .spec
        .options
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    options.insert(VXLANID_OPTION.into(), network.vni.to_string());
    options
}

/// `network` as `docker network inspect` shows a swarm-scope overlay.
pub fn view(network: &Network) -> NetworkView {
    NetworkView {
        name: network.name().to_string(),
        id: network.id.clone(),
        created: network.meta.created_at.clone(),
        scope: "swarm".into(),
        driver: OVERLAY.into(),
        enable_ipv6: false,
        ipam: IpamView {
            driver: DEFAULT_IPAM.into(),
            options: None,
            config: ipam_configs(network),
        },
        internal: network.spec.internal == Some(true),
        attachable: network.spec.attachable == Some(true),
        ingress: network.is_ingress(),
        config_from: ConfigFrom::default(),
        config_only: false,
        containers: None,
        options: driver_options(network),
        labels: network.spec.labels.clone(),
    }
}

/// A task's attachment as `NetworksAttachments` shows it: the swarm network object and the
/// task's addresses on it.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachmentView {
    network: SwarmNetworkView,
    addresses: Vec<String>,
}

/// A network as swarm's own API shows it (inside a task's attachments).
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SwarmNetworkView {
    #[serde(rename = "ID")]
    id: String,
    version: ObjectVersion,
    created_at: String,
    updated_at: String,
    spec: SwarmNetworkSpec,
    driver_state: DriverState,
    #[serde(rename = "IPAMOptions")]
    ipam_options: IpamOptions,
}

/// The spec part of [`SwarmNetworkView`].
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SwarmNetworkSpec {
    name: String,
    labels: HashMap<String, String>,
    driver_configuration: DriverState,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ingress: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    attachable: bool,
    #[serde(rename = "IPAMOptions")]
    ipam_options: IpamOptions,
    scope: String,
}

/// A driver and its options; empty ones are left out, as swarm leaves them out.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DriverState {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<BTreeMap<String, String>>,
}

/// IPAM driver and configurations in swarm's shape.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct IpamOptions {
    driver: DriverState,
    #[serde(skip_serializing_if = "Option::is_none")]
    configs: Option<Vec<IpamConfig>>,
}

/// The attachment of a task to `network` as `NetworksAttachments` shows it.
pub fn attachment_view(network: &Network, attachment: &TaskNetwork) -> AttachmentView {
    let user_configs = network.spec.ipam.as_ref().and_then(|i| i.config.clone());
    AttachmentView {
        network: SwarmNetworkView {
            id: network.id.clone(),
            version: ObjectVersion {
                index: Some(network.meta.version),
            },
            created_at: network.meta.created_at.clone(),
            updated_at: network.meta.updated_at.clone(),
            spec: SwarmNetworkSpec {
                name: network.name().to_string(),
                labels: network.spec.labels.clone().unwrap_or_default(),
                driver_configuration: DriverState {
                    name: None,
                    options: network
                        .spec
                        .options
                        .clone()
                        .map(|o| o.into_iter().collect()),
                },
                ingress: network.is_ingress(),
                attachable: network.spec.attachable == Some(true),
                ipam_options: IpamOptions {
                    driver: DriverState::default(),
                    configs: user_configs.filter(|c| !c.is_empty()),
                },
                scope: "swarm".into(),
            },
            driver_state: DriverState {
                name: Some(OVERLAY.into()),
                options: Some(BTreeMap::from([(
                    VXLANID_OPTION.to_string(),
                    network.vni.to_string(),
                )])),
            },
            ipam_options: IpamOptions {
                driver: DriverState {
                    name: Some(DEFAULT_IPAM.into()),
                    options: None,
                },
                configs: Some(ipam_configs(network)),
            },
        },
        addresses: vec![attachment.address.to_string()],
    }
}

/// Finds a network by ID, name, or unique ID prefix.
pub fn find<'a>(state: &'a ClusterState, reference: &str) -> ApiResult<&'a Network> {
    super::lookup::find(&state.networks, reference, "network", |n| Some(n.name()))
}

/// `POST /networks/create`
pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    JsonBody(spec): JsonBody<NetworkCreateRequest>,
) -> ApiResult<(StatusCode, Json<NetworkCreateResponse>)> {
    let manager = super::manager(&daemon).await?;
    let spec = checked(spec)?;
    let network = {
        let applied = manager.store.read();
        let state = &applied.state;
        let cluster = state.cluster().ok_or_else(ApiError::not_a_manager)?;
        if state.networks.values().any(|n| n.name() == spec.name) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("network with name {} already exists", spec.name),
            ));
        }
        if let Some(ingress) = state.networks.values().find(|n| n.is_ingress()) {
            if spec.ingress == Some(true) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "rpc error: code = AlreadyExists desc = ingress network ({}) is already present",
                        ingress.id
                    ),
                ));
            }
        }
        ipam::new_network(
            pki::new_id(),
            spec,
            &state.networks,
            &cluster.default_addr_pool,
            cluster.subnet_size,
        )
        .map_err(ipam_error)?
    };
    let id = network.id.clone();
    manager
        .propose(Proposal::create(Object::Network(network)))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NetworkCreateResponse {
            id,
            warning: String::new(),
        }),
    ))
}

/// The status code docker answers an allocation error with.
fn ipam_error(e: IpamError) -> ApiError {
    let status = match e {
        IpamError::Overlap { .. } => StatusCode::FORBIDDEN,
        IpamError::PoolsExhausted | IpamError::VnisExhausted => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.to_string())
}

/// Checks a create request as docker does, and fills in the driver and scope.
fn checked(mut spec: NetworkCreateRequest) -> ApiResult<NetworkCreateRequest> {
    let invalid = |what: String| {
        ApiError::bad_request(format!("rpc error: code = InvalidArgument desc = {what}"))
    };
    if spec.name.is_empty() {
        return Err(invalid("name must be provided".into()));
    }
    if !valid_name(&spec.name) {
        return Err(ApiError::bad_request(format!(
            "invalid network name \"{}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            spec.name
        )));
    }
    match spec.driver.as_deref() {
        None | Some("") | Some(OVERLAY) => spec.driver = Some(OVERLAY.into()),
        Some(other) => {
            return Err(invalid(format!(
                "network driver \"{other}\" is not supported: shoal manages swarm-scope overlay networks only (use -d overlay)"
            )));
        }
    }
    match spec.scope.as_deref() {
        None | Some("") | Some("swarm") => spec.scope = Some("swarm".into()),
        Some(other) => {
            return Err(invalid(format!(
                "invalid scope {other:?}: shoal networks are swarm-scoped"
            )));
        }
    }
    if spec.enable_ipv6 == Some(true) {
        return Err(invalid(
            "IPv6 is not supported on shoal overlay networks".into(),
        ));
    }
    if spec.config_only == Some(true)
        || spec
            .config_from
            .as_ref()
            .is_some_and(|c| c.network.as_deref().is_some_and(|n| !n.is_empty()))
    {
        return Err(invalid(
            "config-only networks are not supported by shoal".into(),
        ));
    }
    let ipam_driver = spec.ipam.as_ref().and_then(|i| i.driver.as_deref());
    if let Some(driver) = ipam_driver.filter(|d| !d.is_empty() && *d != DEFAULT_IPAM) {
        return Err(invalid(format!(
            "IPAM driver \"{driver}\" is not supported: only \"default\" is"
        )));
    }
    Ok(spec)
}

/// Docker's rule for network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_name(name: &str) -> bool {
    name.chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '_' | '.' | '-')))
}

/// The query of `GET /networks`.
#[derive(Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

const NETWORK_FILTERS: &[&str] = &["driver", "id", "label", "name", "scope", "type"];

/// `GET /networks`, by name.
pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<NetworkView>>> {
    let manager = super::manager(&daemon).await?;
    let filters = Filters::parse(query.filters.as_deref(), NETWORK_FILTERS)?;
    if !filters.accepts("type", |t| matches!(t, "custom" | "builtin")) {
        return Err(ApiError::bad_request(
            "invalid filter: 'type' must be 'custom' or 'builtin'",
        ));
    }
    let applied = manager.store.read();
    let mut networks: Vec<&Network> = applied
        .state
        .networks
        .values()
        .filter(|n| matches(n, &filters))
        .collect();
    networks.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Json(networks.into_iter().map(view).collect()))
}

/// Whether `network` passes `filters`, as docker matches them.
fn matches(network: &Network, filters: &Filters) -> bool {
    filters.accepts("id", |id| network.id.contains(id))
        && filters.accepts("name", |n| network.name().contains(n))
        && filters.accepts("driver", |d| d == OVERLAY)
        && filters.accepts("scope", |s| s == "swarm")
        // Every swarm network is a user's (`custom`); the built-in ones are local.
        && filters.accepts("type", |t| t == "custom")
        && filters.accepts_labels(network.spec.labels.as_ref())
}

/// `GET /networks/{id}`: the network, with what this node's data plane knows of it: its
/// endpoints here (`Containers`), the nodes it reaches them on (`Peers`), as docker shows them for
/// an overlay, and the overlay engine's counters for it (`Counters`, shoal's own).
pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(reference): Path<String>,
) -> ApiResult<Json<LocalNetworkView>> {
    let manager = super::manager(&daemon).await?;
    let node = daemon.swarm().await.ok_or(SwarmError::NotInSwarm)?;
    let counters = node.network.counters().await;
    let mesh_counters = node.network.mesh_counters().await;
    let balancer_counters = node.network.balancer_counters().await;
    let table = node.network.table();
    let applied = manager.store.read();
    let network = find(&applied.state, &reference)?;
    let mut view = view(network);
    let routes = table.networks.get(&network.id);
    let endpoints = routes.map(|r| r.endpoints.values()).into_iter().flatten();
    let mut containers = BTreeMap::new();
    let mut peers = BTreeMap::new();
    for endpoint in endpoints {
        if endpoint.node_id == node.node_id && endpoint.task_id.is_empty() {
            // The node's own ingress address, named as docker names its ingress sandbox.
            containers.insert(
                "ingress-sbox".to_string(),
                serde_json::json!({
                    "Name": "ingress-endpoint",
                    "EndpointID": "ingress-sbox",
                    "MacAddress": endpoint.mac.map(|b| format!("{b:02x}")).join(":"),
                    "IPv4Address": format!("{}/{}", endpoint.address, network.subnet.prefix()),
                    "IPv6Address": "",
                }),
            );
        } else if endpoint.node_id == node.node_id {
            let name = applied
                .state
                .tasks
                .get(&endpoint.task_id)
                .map(|t| format!("{}.{}", super::tasks::task_name(&applied.state, t), t.id))
                .unwrap_or_default();
            let prefix = network.subnet.prefix();
            let mac = endpoint.mac.map(|b| format!("{b:02x}")).join(":");
            containers.insert(
                endpoint.task_id.clone(),
                serde_json::json!({
                    "Name": name,
                    "EndpointID": endpoint.task_id,
                    "MacAddress": mac,
                    "IPv4Address": format!("{}/{prefix}", endpoint.address),
                    "IPv6Address": "",
                }),
            );
        }
        if let Some(ip) = table.nodes.get(&endpoint.node_id) {
            let name = applied
                .state
                .nodes
                .get(&endpoint.node_id)
                .and_then(|n| n.description.hostname.clone())
                .unwrap_or_else(|| endpoint.node_id.clone());
            peers.insert((*ip, endpoint.node_id.clone()), name);
        }
    }
    view.containers = Some(containers);
    let peers = peers
        .into_iter()
        .map(|((ip, _), name)| serde_json::json!({ "Name": name, "IP": ip.to_string() }))
        .collect();
    Ok(Json(LocalNetworkView {
        network: view,
        peers,
        counters: counters
            .as_ref()
            .and_then(|c| c.networks.get(&network.id).copied()),
        unattributed_drops: counters.map(|c| c.drops),
        mesh_counters: mesh_counters.filter(|_| network.is_ingress()),
        balancer_counters: balancer_counters.filter(|_| routes.is_some() && !network.is_ingress()),
    }))
}

/// How long a network's removal waits for the tasks still stopping on it: past docker's
/// default stop grace period (10 s), which a task ignoring SIGTERM takes in full.
const STOPPING_WAIT: Duration = Duration::from_secs(15);

/// Whether tasks on the network `id` are stopping (their service is gone, or they are no longer
/// wanted running) and nothing else holds it: a removal then only has to wait for them.
fn stopping_on(state: &ClusterState, id: &str) -> bool {
    let mut holders = state
        .tasks
        .values()
        .filter(|t| !t.is_terminal() && t.networks.iter().any(|n| n.network_id == id))
        .peekable();
    let leaving = |t: &crate::store::Task| {
        t.desired_state != TaskState::RUNNING || !state.services.contains_key(&t.service_id)
    };
    holders.peek().is_some() && holders.all(leaving)
}

/// A network as this node sees it (see [`inspect`]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LocalNetworkView {
    #[serde(flatten)]
    network: NetworkView,
    /// The nodes with endpoints on the network, `{Name, IP}` as docker shows them.
    peers: Vec<serde_json::Value>,
    /// The overlay engine's counters for the network on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<NetworkStats>,
    /// Datagrams this node dropped before they could be tied to a network.
    #[serde(skip_serializing_if = "Option::is_none")]
    unattributed_drops: Option<EngineDrops>,
    /// The routing mesh's counters on this node (the ingress network only).
    #[serde(skip_serializing_if = "Option::is_none")]
    mesh_counters: Option<crate::net::mesh::MeshCounters>,
    /// The VIP balancer's counters on this node (all its networks; other overlays than ingress).
    #[serde(skip_serializing_if = "Option::is_none")]
    balancer_counters: Option<crate::net::balancer::BalancerCounters>,
}

/// `DELETE /networks/{id}`: refused while a service or a task uses the network (the store
/// checks again when it applies the removal). Tasks on their way out are waited for first (up
/// to [`STOPPING_WAIT`]): `docker stack rm` removes a stack's services and at once its networks,
/// which docker allows while the services' tasks still stop, and shoal only once they have
/// stopped (until then they hold their addresses on the network).
pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(reference): Path<String>,
) -> ApiResult<StatusCode> {
    let manager = super::manager(&daemon).await?;
    let id = {
        let applied = manager.store.read();
        find(&applied.state, &reference)?.id.clone()
    };
    let deadline = tokio::time::Instant::now() + STOPPING_WAIT;
    let mut changes = manager.store.changes();
    while stopping_on(&manager.store.read().state, &id) {
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    let key = ObjectKey {
        kind: Kind::Network,
        id,
    };
    manager.propose(Proposal::delete(key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Meta;

    fn network() -> Network {
        let spec = NetworkCreateRequest {
            name: "mynet".into(),
            ..Default::default()
        };
        let networks = BTreeMap::new();
        let pools = ["10.0.0.0/8".to_string()];
        let mut network = ipam::new_network("4hzi39".into(), spec, &networks, &pools, 24).unwrap();
        network.meta = Meta {
            version: 6,
            created_at: "2026-11-25T00:27:43.460736451Z".into(),
            updated_at: "2026-11-25T00:27:43.460736451Z".into(),
        };
        network
    }

    #[test]
    fn inspect_looks_like_dockers() {
        let json = serde_json::to_value(view(&network())).unwrap();
        let expected = serde_json::json!({
            "Name": "mynet",
            "Id": "4hzi39",
            "Created": "2026-11-25T00:27:43.460736451Z",
            "Scope": "swarm",
            "Driver": "overlay",
            "EnableIPv6": false,
            "IPAM": {
                "Driver": "default",
                "Options": null,
                "Config": [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]
            },
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": null,
            "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4096"},
            "Labels": null
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn attachments_look_like_swarms() {
        let attachment = TaskNetwork {
            network_id: "4hzi39".into(),
            address: "10.0.0.5/24".parse().unwrap(),
            aliases: Vec::new(),
        };
        let json = serde_json::to_value(attachment_view(&network(), &attachment)).unwrap();
        let expected = serde_json::json!({
            "Network": {
                "ID": "4hzi39",
                "Version": {"Index": 6},
                "CreatedAt": "2026-11-25T00:27:43.460736451Z",
                "UpdatedAt": "2026-11-25T00:27:43.460736451Z",
                "Spec": {
                    "Name": "mynet",
                    "Labels": {},
                    "DriverConfiguration": {},
                    "IPAMOptions": {"Driver": {}},
                    "Scope": "swarm"
                },
                "DriverState": {
                    "Name": "overlay",
                    "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4096"}
                },
                "IPAMOptions": {
                    "Driver": {"Name": "default"},
                    "Configs": [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]
                }
            },
            "Addresses": ["10.0.0.5/24"]
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn bad_requests_are_refused_with_docker_wording() {
        let request = |name: &str, driver: Option<&str>| NetworkCreateRequest {
            name: name.into(),
            driver: driver.map(Into::into),
            ..Default::default()
        };
        let ok = checked(request("my.net-1", None)).unwrap();
        assert_eq!(ok.driver.as_deref(), Some("overlay"));
        assert_eq!(ok.scope.as_deref(), Some("swarm"));
        let bridge = checked(request("x", Some("bridge"))).unwrap_err();
        assert!(bridge.message().contains("\"bridge\" is not supported"));
        assert!(checked(request("", None)).is_err());
        assert!(checked(request("-x", None)).is_err());
        assert!(checked(request("a b", None)).is_err());
    }

    #[test]
    fn a_removal_waits_only_for_tasks_on_their_way_out() {
        let mut state = ClusterState::default();
        let n = network();
        let service = crate::store::state::test_service("s1", Default::default());
        let task = crate::store::state::test_task("t1", "s1", &[(&n.id, "10.0.0.5/24")]);
        assert!(
            !stopping_on(&state, &n.id),
            "nothing on it: nothing to wait for"
        );
        state.insert(Object::Task(task.clone()));
        assert!(stopping_on(&state, &n.id), "its service is gone");
        state.insert(Object::Service(service));
        assert!(
            !stopping_on(&state, &n.id),
            "wanted running: refused at once"
        );
        let mut stopping = task;
        stopping.desired_state = TaskState::SHUTDOWN;
        state.insert(Object::Task(stopping));
        assert!(stopping_on(&state, &n.id), "being shut down");
    }

    #[test]
    fn filters_match_as_docker_matches() {
        let n = network();
        let f = |raw: &str| Filters::parse(Some(raw), NETWORK_FILTERS).unwrap();
        assert!(matches(&n, &f(r#"{"name":{"net":true}}"#)));
        assert!(!matches(&n, &f(r#"{"name":{"other":true}}"#)));
        assert!(matches(&n, &f(r#"{"driver":{"overlay":true}}"#)));
        assert!(matches(&n, &f(r#"{"type":{"custom":true}}"#)));
        assert!(!matches(&n, &f(r#"{"type":{"builtin":true}}"#)));
        assert!(!matches(&n, &f(r#"{"scope":{"local":true}}"#)));
        assert!(matches(&n, &f(r#"{"id":{"4hz":true}}"#)));
        assert!(!matches(&n, &f(r#"{"label":{"a=b":true}}"#)));
    }
}
