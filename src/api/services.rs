//! `/services`: create, list, inspect, update (with rollback) and remove services.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bollard::models::{
    NetworkAttachmentConfig, ObjectVersion, ServiceEndpointVirtualIps, ServiceServiceStatus,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceUpdateStatus,
    ServiceUpdateStatusStateEnum, TaskState,
};
use serde::{Deserialize, Serialize};

use super::body::{Filters, JsonBody, VersionQuery};
use super::error::{ApiError, ApiResult};
use crate::daemon::Daemon;
use crate::manager::Manager;
use crate::manager::endpoint::{self, EndpointError};
use crate::manager::scheduler::validate_placement;
use crate::pki;
use crate::store::objects::timestamp_now;
use crate::store::{
    ClusterState, Conflict, Kind, Meta, Object, ObjectKey, Proposal, Service, StoreError,
};

/// How many times a write decides its ports and addresses again when a concurrent write took
/// one it chose.
const WRITE_ATTEMPTS: usize = 5;

/// A service as the API shows it: bollard's model lacks `PreviousSpec`.
#[derive(Serialize)]
pub struct ServiceView {
    #[serde(flatten)]
    service: bollard::models::Service,
    #[serde(rename = "PreviousSpec", skip_serializing_if = "Option::is_none")]
    previous_spec: Option<ServiceSpec>,
}

/// `POST /services/create`
pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    JsonBody(spec): JsonBody<ServiceSpec>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let manager = super::manager(&daemon).await?;
    let spec = {
        let applied = manager.store.read();
        attach_networks(&applied.state, checked(spec)?)?
    };
    let service = Service {
        id: pki::new_id(),
        meta: Meta::now(),
        spec,
        previous_spec: None,
        generation: 1,
        update_status: None,
        endpoint: Default::default(),
    };
    let id = service.id.clone();
    write(&manager, service, None).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "ID": id }))))
}

/// Gives `service` the endpoint its spec asks for and writes it: creates it, or updates it
/// from `version`. When a concurrent write took a port or an address it was given, it is
/// decided again from the new state (a port the spec names is then refused in docker's words).
async fn write(manager: &Manager, mut service: Service, version: Option<u64>) -> ApiResult<()> {
    let current = std::mem::take(&mut service.endpoint);
    let mut attempt = 0;
    loop {
        attempt += 1;
        service.endpoint = {
            let applied = manager.store.read();
            endpoint::resolve(&applied.state, &service.id, &service.spec, &current)
                .map_err(endpoint_error)?
        };
        let object = Object::Service(service.clone());
        let proposal = match version {
            None => Proposal::create(object),
            Some(version) => Proposal::update(object, version),
        };
        match manager.propose(proposal).await {
            Err(StoreError::Conflict(
                Conflict::PortInUse { .. } | Conflict::AddressUnavailable { .. },
            )) if attempt < WRITE_ATTEMPTS => continue,
            done => return Ok(done?),
        }
    }
}

/// The API's answer to a spec whose endpoint cannot be had.
fn endpoint_error(e: EndpointError) -> ApiError {
    match e {
        EndpointError::PortsExhausted | EndpointError::AddressesExhausted(_) => {
            ApiError::internal(e)
        }
        _ => ApiError::bad_request(e.to_string()),
    }
}

/// Checks a spec as docker does and fills in the replicated mode docker assumes.
fn checked(mut spec: ServiceSpec) -> ApiResult<ServiceSpec> {
    let name = spec
        .name
        .get_or_insert_with(|| format!("svc-{}", &pki::new_id()[..8]));
    if !valid_name(name) {
        return Err(ApiError::bad_request(format!(
            "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component: {name}"
        )));
    }
    let template = spec.task_template.as_ref();
    let image = template
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.as_deref());
    if image.is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided",
        ));
    }
    let mounts = template
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.mounts.as_deref())
        .unwrap_or_default();
    for (index, mount) in mounts.iter().enumerate() {
        // As swarmkit checks them: the rest (paths, types) is for the node that runs the task.
        if mounts[..index].iter().any(|m| m.target == mount.target) {
            return Err(ApiError::bad_request(format!(
                "rpc error: code = InvalidArgument desc = invalid duplicate mount point: {}",
                mount.target.as_deref().unwrap_or_default()
            )));
        }
    }
    let placement = template
        .and_then(|t| t.placement.clone())
        .unwrap_or_default();
    let preferences: Vec<String> = placement
        .preferences
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            p.spread
                .and_then(|s| s.spread_descriptor)
                .map(|d| format!("spread={d}"))
        })
        .collect();
    validate_placement(&placement.constraints.unwrap_or_default(), &preferences).map_err(|e| {
        ApiError::bad_request(format!("rpc error: code = InvalidArgument desc = {e}"))
    })?;
    let mode = spec.mode.get_or_insert_with(ServiceSpecMode::default);
    if mode.replicated_job.is_some() || mode.global_job.is_some() {
        return Err(ApiError::bad_request(
            "rpc error: code = Unimplemented desc = job modes are not supported by shoal",
        ));
    }
    if mode.global.is_none() {
        // `Replicated: {}` (the docker CLI without --replicas) means one replica, as in moby.
        let replicated = mode
            .replicated
            .get_or_insert_with(ServiceSpecModeReplicated::default);
        replicated.replicas.get_or_insert(1);
    }
    if mode
        .replicated
        .as_ref()
        .and_then(|r| r.replicas)
        .is_some_and(|n| n < 0)
    {
        return Err(ApiError::bad_request(
            "rpc error: code = InvalidArgument desc = replicas must be non-negative",
        ));
    }
    endpoint::normalize(&mut spec);
    Ok(spec)
}

/// Moves the attachments of `spec` to `TaskTemplate.Networks` (older clients send them as
/// `Networks`), each network named by its ID, as swarm stores them. An unknown network, the
/// ingress network (attached by publishing ports) and a network named twice are refused.
fn attach_networks(state: &ClusterState, mut spec: ServiceSpec) -> ApiResult<ServiceSpec> {
    let legacy = spec.networks.take().unwrap_or_default();
    let template = spec.task_template.get_or_insert_with(Default::default);
    let mut attachments = template.networks.take().unwrap_or_default();
    attachments.extend(legacy);
    let mut resolved: Vec<NetworkAttachmentConfig> = Vec::new();
    for mut attachment in attachments {
        let target = attachment.target.clone().unwrap_or_default();
        let network = super::networks::find(state, &target)?;
        let invalid = |what: String| {
            ApiError::bad_request(format!("rpc error: code = InvalidArgument desc = {what}"))
        };
        if network.is_ingress() {
            return Err(invalid(format!(
                "Service cannot be explicitly attached to the ingress network \"{}\"",
                network.name()
            )));
        }
        if resolved
            .iter()
            .any(|r| r.target.as_deref() == Some(network.id.as_str()))
        {
            return Err(invalid(format!(
                "network {} is attached to the service more than once",
                network.name()
            )));
        }
        attachment.target = Some(network.id.clone());
        resolved.push(attachment);
    }
    template.networks = (!resolved.is_empty()).then_some(resolved);
    Ok(spec)
}

/// Docker's rule: letters, digits and dashes, at most 63, not starting or ending with a dash.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The query of `GET /services`.
#[derive(Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
    status: Option<String>,
}

const SERVICE_FILTERS: &[&str] = &["id", "label", "mode", "name"];

/// `GET /services[?status=true]`
pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<ServiceView>>> {
    let manager = super::manager(&daemon).await?;
    let filters = Filters::parse(query.filters.as_deref(), SERVICE_FILTERS)?;
    let with_status = super::body::flag(query.status.as_deref());
    let applied = manager.store.read();
    let state = &applied.state;
    let services = state
        .services
        .values()
        .filter(|s| matches(s, &filters))
        .map(|s| view(state, s, with_status))
        .collect();
    Ok(Json(services))
}

fn matches(service: &Service, filters: &Filters) -> bool {
    let name = service.spec.name.as_deref().unwrap_or_default();
    let mode = if service
        .spec
        .mode
        .as_ref()
        .is_some_and(|m| m.global.is_some())
    {
        "global"
    } else {
        "replicated"
    };
    filters.accepts("id", |id| service.id.starts_with(id))
        && filters.accepts("name", |n| name.starts_with(n))
        && filters.accepts("mode", |m| m == mode)
        && filters.accepts_labels(service.spec.labels.as_ref())
}

/// Finds a service by ID, name, or unique ID prefix.
pub fn find<'a>(state: &'a ClusterState, name: &str) -> ApiResult<&'a Service> {
    super::lookup::find(&state.services, name, "service", |s| s.spec.name.as_deref())
}

/// `GET /services/{id}`
pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> ApiResult<Json<ServiceView>> {
    let manager = super::manager(&daemon).await?;
    let applied = manager.store.read();
    let service = find(&applied.state, &name)?;
    Ok(Json(view(&applied.state, service, false)))
}

fn view(state: &ClusterState, service: &Service, with_status: bool) -> ServiceView {
    let service_status = with_status.then(|| {
        let tasks = state.tasks.values().filter(|t| t.service_id == service.id);
        let running = tasks
            .clone()
            .filter(|t| t.state() == TaskState::RUNNING && t.desired_state == TaskState::RUNNING);
        let completed = tasks.filter(|t| t.state() == TaskState::COMPLETE).count() as u64;
        let desired = match service
            .spec
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
        {
            Some(replicated) => replicated.replicas.unwrap_or(0).max(0) as u64,
            // A global service wants one task per node that can run it.
            None => state
                .nodes
                .values()
                .filter(|n| crate::manager::placement::eligible(&service.spec, n))
                .count() as u64,
        };
        ServiceServiceStatus {
            running_tasks: Some(running.count() as u64),
            desired_tasks: Some(desired),
            completed_tasks: Some(completed),
        }
    });
    ServiceView {
        service: bollard::models::Service {
            id: Some(service.id.clone()),
            version: Some(ObjectVersion {
                index: Some(service.meta.version),
            }),
            created_at: Some(service.meta.created_at.clone()),
            updated_at: Some(service.meta.updated_at.clone()),
            spec: Some(service.spec.clone()),
            endpoint: Some(endpoint_view(service)),
            update_status: service.update_status.clone(),
            service_status,
            job_status: None,
        },
        previous_spec: service.previous_spec.clone(),
    }
}

/// Docker's `Endpoint` of a service: the spec's endpoint, the resolved ports and the virtual
/// IPs (each list left out when empty, as docker does).
fn endpoint_view(service: &Service) -> bollard::models::ServiceEndpoint {
    let endpoint = &service.endpoint;
    let virtual_ips: Vec<ServiceEndpointVirtualIps> = endpoint
        .virtual_ips
        .iter()
        .map(|v| ServiceEndpointVirtualIps {
            network_id: Some(v.network_id.clone()),
            addr: Some(v.address.to_string()),
        })
        .collect();
    bollard::models::ServiceEndpoint {
        spec: Some(service.spec.endpoint_spec.clone().unwrap_or_default()),
        ports: (!endpoint.ports.is_empty()).then(|| endpoint.ports.clone()),
        virtual_ips: (!virtual_ips.is_empty()).then_some(virtual_ips),
    }
}

/// The query of `POST /services/{id}/update`.
#[derive(Deserialize)]
pub struct UpdateQuery {
    #[serde(flatten)]
    version: VersionQuery,
    rollback: Option<String>,
}

/// `POST /services/{id}/update?version=N[&rollback=previous]`: a stale version is refused.
pub async fn update(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(query): Query<UpdateQuery>,
    JsonBody(spec): JsonBody<ServiceSpec>,
) -> ApiResult<Json<serde_json::Value>> {
    let manager = super::manager(&daemon).await?;
    let version = query.version.version()?;
    let mut service = {
        let applied = manager.store.read();
        find(&applied.state, &name)?.clone()
    };
    let rolling_back = query.rollback.as_deref() == Some("previous");
    let new_spec = if rolling_back {
        service.previous_spec.clone().ok_or_else(|| {
            ApiError::bad_request(format!(
                "rpc error: code = FailedPrecondition desc = service {} does not have a previous spec",
                service.id
            ))
        })?
    } else {
        let applied = manager.store.read();
        attach_networks(&applied.state, checked(spec)?)?
    };
    if new_spec.name != service.spec.name {
        return Err(ApiError::bad_request(
            "rpc error: code = Unimplemented desc = renaming services is not supported",
        ));
    }
    // A new endpoint spec redeploys too, as in swarmkit: publishing through the mesh or no
    // longer doing so changes the networks a task is on.
    if new_spec.task_template != service.spec.task_template
        || new_spec.endpoint_spec != service.spec.endpoint_spec
    {
        service.generation += 1;
        service.update_status = Some(ServiceUpdateStatus {
            state: Some(if rolling_back {
                ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
            } else {
                ServiceUpdateStatusStateEnum::UPDATING
            }),
            started_at: Some(timestamp_now()),
            completed_at: None,
            message: Some(
                if rolling_back {
                    "manually requested rollback"
                } else {
                    "update in progress"
                }
                .into(),
            ),
        });
    }
    service.previous_spec = Some(std::mem::replace(&mut service.spec, new_spec));
    service.meta.touch();
    write(&manager, service, Some(version)).await?;
    Ok(Json(serde_json::json!({ "Warnings": null })))
}

/// `DELETE /services/{id}`: the orchestrator stops its tasks.
pub async fn remove(State(daemon): State<Arc<Daemon>>, Path(name): Path<String>) -> ApiResult<()> {
    let manager = super::manager(&daemon).await?;
    let id = {
        let applied = manager.store.read();
        find(&applied.state, &name)?.id.clone()
    };
    let key = ObjectKey {
        kind: Kind::Service,
        id,
    };
    manager.propose(Proposal::delete(key)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{TaskSpec, TaskSpecContainerSpec};

    fn spec(mode: Option<ServiceSpecMode>) -> ServiceSpec {
        let container = TaskSpecContainerSpec {
            image: Some("sleep".into()),
            ..Default::default()
        };
        ServiceSpec {
            name: Some("web".into()),
            mode,
            task_template: Some(TaskSpec {
                container_spec: Some(container),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn replicas(spec: &ServiceSpec) -> Option<i64> {
        spec.mode.as_ref()?.replicated.as_ref()?.replicas
    }

    #[test]
    fn a_service_without_a_replica_count_has_one() {
        assert_eq!(replicas(&checked(spec(None)).unwrap()), Some(1));
        let empty = ServiceSpecMode {
            replicated: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(replicas(&checked(spec(Some(empty))).unwrap()), Some(1));
    }

    #[test]
    fn bad_specs_are_refused_with_docker_wording() {
        let mut no_image = spec(None);
        no_image.task_template = None;
        assert!(
            checked(no_image)
                .unwrap_err()
                .message()
                .contains("image reference must be provided")
        );
        let mut bad_name = spec(None);
        bad_name.name = Some("-web".into());
        assert!(
            checked(bad_name)
                .unwrap_err()
                .message()
                .contains("valid as a DNS name")
        );
        let mut bad_constraint = spec(None);
        bad_constraint.task_template.as_mut().unwrap().placement =
            Some(bollard::models::TaskSpecPlacement {
                constraints: Some(vec!["node.foo==x".into()]),
                ..Default::default()
            });
        assert!(
            checked(bad_constraint)
                .unwrap_err()
                .message()
                .contains("invalid constraint")
        );
        let mut twice = spec(None);
        let mount = bollard::models::Mount {
            target: Some("/data".into()),
            ..Default::default()
        };
        let container = twice
            .task_template
            .as_mut()
            .unwrap()
            .container_spec
            .as_mut();
        container.unwrap().mounts = Some(vec![mount.clone(), mount]);
        assert_eq!(
            checked(twice).unwrap_err().message(),
            "rpc error: code = InvalidArgument desc = invalid duplicate mount point: /data"
        );
    }

    #[test]
    fn attachments_are_moved_to_the_template_by_network_id() {
        let mut state = ClusterState::default();
        let pools = ["10.0.0.0/8".to_string()];
        let cluster = crate::store::Cluster {
            id: "c".into(),
            meta: Meta::default(),
            spec: Default::default(),
            root_ca: crate::store::RootCaMaterial {
                cert_pem: String::new(),
                key_pem: String::new(),
            },
            worker_token: String::new(),
            manager_token: String::new(),
            default_addr_pool: pools.to_vec(),
            subnet_size: 24,
            data_path_port: 4789,
        };
        let ingress = crate::manager::ipam::ingress_network("ing".into(), &cluster).unwrap();
        state.insert(Object::Network(ingress));
        let spec_of = |name: &str| bollard::models::NetworkCreateRequest {
            name: name.into(),
            ..Default::default()
        };
        let mynet = crate::manager::ipam::new_network(
            "net1".into(),
            spec_of("mynet"),
            &state.networks,
            &pools,
            24,
        )
        .unwrap();
        state.insert(Object::Network(mynet));
        let attach = |target: &str| NetworkAttachmentConfig {
            target: Some(target.into()),
            aliases: Some(vec!["web".into()]),
            ..Default::default()
        };
        let mut legacy = spec(None);
        legacy.networks = Some(vec![attach("mynet")]);
        let done = attach_networks(&state, legacy).unwrap();
        assert_eq!(done.networks, None);
        let networks = done.task_template.unwrap().networks.unwrap();
        assert_eq!(networks[0].target.as_deref(), Some("net1"));
        assert_eq!(networks[0].aliases, Some(vec!["web".to_string()]));

        let mut unknown = spec(None);
        unknown.task_template.as_mut().unwrap().networks = Some(vec![attach("nope")]);
        let err = attach_networks(&state, unknown).unwrap_err();
        assert_eq!(err.message(), "network nope not found");
        let mut ingress = spec(None);
        ingress.task_template.as_mut().unwrap().networks = Some(vec![attach("ingress")]);
        let err = attach_networks(&state, ingress).unwrap_err();
        assert!(
            err.message()
                .contains("explicitly attached to the ingress network")
        );
        let mut twice = spec(None);
        twice.task_template.as_mut().unwrap().networks =
            Some(vec![attach("mynet"), attach("net1")]);
        assert!(attach_networks(&state, twice).is_err());
    }

    #[test]
    fn the_endpoint_is_shown_as_docker_shows_it() {
        let mut service = Service {
            id: "s1".into(),
            meta: Meta::default(),
            spec: spec(None),
            previous_spec: None,
            generation: 1,
            update_status: None,
            endpoint: Default::default(),
        };
        // A spec without an endpoint spec: an empty one, no ports, no VIPs.
        let json = serde_json::to_value(endpoint_view(&service)).unwrap();
        assert_eq!(json, serde_json::json!({"Spec": {}}));
        let port = serde_json::json!({
            "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8089, "PublishMode": "ingress"
        });
        service.spec.endpoint_spec = Some(
            serde_json::from_value(serde_json::json!({
                "Mode": "vip", "Ports": [port]
            }))
            .unwrap(),
        );
        service.endpoint.ports = service.spec.endpoint_spec.clone().unwrap().ports.unwrap();
        service.endpoint.virtual_ips = vec![crate::store::NetworkAddress {
            network_id: "bs2ldroxbbyuilirb61wvsh33".into(),
            address: "10.0.0.3/24".parse().unwrap(),
        }];
        let json = serde_json::to_value(endpoint_view(&service)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Spec": {"Mode": "vip", "Ports": [port]},
                "Ports": [port],
                "VirtualIPs": [{"NetworkID": "bs2ldroxbbyuilirb61wvsh33", "Addr": "10.0.0.3/24"}]
            })
        );
    }

    #[test]
    fn a_checked_spec_has_docker_endpoint_defaults() {
        let mut published = spec(None);
        published.endpoint_spec = Some(
            serde_json::from_value(serde_json::json!({
                "Ports": [{"TargetPort": 80}]
            }))
            .unwrap(),
        );
        let json = serde_json::to_value(checked(published).unwrap().endpoint_spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Mode": "vip", "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishMode": "ingress"}
            ]})
        );
    }
}
