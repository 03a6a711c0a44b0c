//! Allocation and scheduling on the leader: new tasks become pending (the allocator's step, where
//! later issues hand out addresses and ports), pending tasks get a node (the scheduler's).
//! This file converts store objects into the scheduler's inputs and its answers into changes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bollard::models::{
    EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, NodeSpecAvailabilityEnum,
    NodeSpecRoleEnum, NodeState, ServiceSpec, TaskState, TaskStatus,
};

use super::scheduler::{
    Availability, Constraint, ExistingTask, HostPort, NodeInfo, Platform, Protocol, Resources,
    Role, Scheduler, TaskGroup,
};
use crate::store::objects::timestamp;
use crate::store::{Change, ClusterState, Node, Service, Task};

/// How often the loop looks again without a change (a node may have come up).
pub const TICK: Duration = Duration::from_millis(500);

/// Allocates new tasks and schedules every pending one it can.
pub fn place(state: &ClusterState, now: SystemTime) -> Vec<Change> {
    let at = timestamp(now);
    let status = |task_state, message: &str, err: Option<String>| TaskStatus {
        timestamp: Some(at.clone()),
        state: Some(task_state),
        message: Some(message.to_string()),
        err,
        ..Default::default()
    };
    let waiting: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.node_id.is_none() && t.desired_state == TaskState::RUNNING)
        .filter(|t| matches!(t.state(), TaskState::NEW | TaskState::PENDING))
        .collect();
    if waiting.is_empty() {
        return Vec::new();
    }
    let mut changes: Vec<Change> = waiting
        .iter()
        .filter(|t| t.state() == TaskState::NEW)
        .map(|t| Change::TaskStatus {
            task_id: t.id.clone(),
            status: status(TaskState::PENDING, "pending task scheduling", None),
        })
        .collect();
    let mut groups: BTreeMap<(&str, u64), Vec<&Task>> = BTreeMap::new();
    for task in &waiting {
        groups
            .entry((task.service_id.as_str(), task.generation))
            .or_default()
            .push(task);
    }
    let nodes = state.nodes.values().map(node_info).collect();
    let mut scheduler = Scheduler::new(nodes, existing_tasks(state));
    for ((service_id, _), tasks) in groups {
        let Some(service) = state.services.get(service_id) else {
            continue;
        };
        let group = task_group(service, &tasks);
        match scheduler.schedule(group) {
            Ok(schedule) => {
                changes.extend(schedule.placements.into_iter().map(|p| Change::TaskAssign {
                    task_id: p.task_id,
                    node_id: p.node_id.to_string(),
                    status: status(TaskState::ASSIGNED, "scheduler assigned task to node", None),
                }));
                changes.extend(schedule.unplaced.into_iter().filter_map(|u| {
                    let task = state.tasks.get(&u.task_id)?;
                    // Say it once: the same reason again would only churn the log.
                    (task.status.err.as_deref() != Some(u.reason.as_str())).then(|| {
                        Change::TaskStatus {
                            task_id: u.task_id,
                            status: status(
                                TaskState::PENDING,
                                "pending task scheduling",
                                Some(u.reason),
                            ),
                        }
                    })
                }));
            }
            Err(e) => tracing::warn!(service = %service_id, "cannot schedule: {e}"),
        }
    }
    changes
}

/// Whether a global service with `spec` belongs on `node`: the node takes tasks and meets the
/// constraints.
pub fn eligible(spec: &ServiceSpec, node: &Node) -> bool {
    super::orchestrator::is_active(node) && satisfies(spec, node)
}

/// Whether `node` satisfies the placement constraints of `spec`.
pub fn satisfies(spec: &ServiceSpec, node: &Node) -> bool {
    let constraints = placement_of(spec).0;
    match Constraint::parse_all(&constraints) {
        Ok(parsed) => {
            let info = node_info(node);
            parsed.iter().all(|c| c.matches(&info))
        }
        Err(_) => false,
    }
}

fn placement_of(spec: &ServiceSpec) -> (Vec<String>, Vec<String>, u64) {
    let placement = spec
        .task_template
        .as_ref()
        .and_then(|t| t.placement.clone())
        .unwrap_or_default();
    let preferences = placement
        .preferences
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.spread.and_then(|s| s.spread_descriptor))
        .map(|descriptor| format!("spread={descriptor}"))
        .collect();
    (
        placement.constraints.unwrap_or_default(),
        preferences,
        placement.max_replicas.unwrap_or(0).max(0) as u64,
    )
}

fn node_info(node: &Node) -> NodeInfo {
    let resources = node.description.resources.clone().unwrap_or_default();
    let platform = node.description.platform.clone().unwrap_or_default();
    let engine_labels = node
        .description
        .engine
        .as_ref()
        .and_then(|e| e.labels.clone())
        .unwrap_or_default();
    NodeInfo {
        id: node.id.clone(),
        hostname: node.description.hostname.clone().unwrap_or_default(),
        addr: node.status.addr.clone().unwrap_or_default(),
        role: if node.spec.role == Some(NodeSpecRoleEnum::MANAGER) {
            Role::Manager
        } else {
            Role::Worker
        },
        platform: Platform {
            os: platform.os.unwrap_or_default(),
            arch: platform.architecture.unwrap_or_default(),
        },
        labels: node
            .spec
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        engine_labels: engine_labels.into_iter().collect(),
        ready: node.status.state == Some(NodeState::READY),
        availability: match node.spec.availability {
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            _ => Availability::Active,
        },
        resources: Resources {
            nano_cpus: resources.nano_cpus.unwrap_or(0),
            memory_bytes: resources.memory_bytes.unwrap_or(0),
        },
    }
}

fn reservations(service: &Service) -> Resources {
    let reserved = service
        .spec
        .task_template
        .as_ref()
        .and_then(|t| t.resources.as_ref())
        .and_then(|r| r.reservations.clone())
        .unwrap_or_default();
    Resources {
        nano_cpus: reserved.nano_cpus.unwrap_or(0),
        memory_bytes: reserved.memory_bytes.unwrap_or(0),
    }
}

fn host_ports(service: &Service) -> Vec<HostPort> {
    let ports = service
        .spec
        .endpoint_spec
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default();
    ports
        .into_iter()
        .filter(|p| p.publish_mode == Some(EndpointPortConfigPublishModeEnum::HOST))
        .filter_map(|p| {
            let protocol = match p.protocol {
                Some(EndpointPortConfigProtocolEnum::UDP) => Protocol::Udp,
                Some(EndpointPortConfigProtocolEnum::SCTP) => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            Some(HostPort {
                published: u16::try_from(p.published_port?).ok()?,
                protocol,
            })
        })
        .collect()
}

fn task_group(service: &Service, tasks: &[&Task]) -> TaskGroup {
    let (constraints, preferences, max_replicas_per_node) = placement_of(&service.spec);
    TaskGroup {
        service_id: service.id.clone(),
        task_ids: tasks.iter().map(|t| t.id.clone()).collect(),
        constraints,
        preferences,
        platforms: Vec::new(),
        reservations: reservations(service),
        max_replicas_per_node,
        host_ports: host_ports(service),
    }
}

/// Tasks that hold a place on a node: assigned and not ended.
fn existing_tasks(state: &ClusterState) -> Vec<ExistingTask> {
    state
        .tasks
        .values()
        .filter(|t| !t.is_terminal() && t.desired_state == TaskState::RUNNING)
        .filter_map(|t| {
            let service = state.services.get(&t.service_id)?;
            Some(ExistingTask {
                node_id: t.node_id.clone()?,
                service_id: t.service_id.clone(),
                reservations: reservations(service),
                host_ports: host_ports(service),
            })
        })
        .collect()
}
