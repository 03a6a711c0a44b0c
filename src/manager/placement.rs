//! Allocation and scheduling on the leader: new tasks get their overlay addresses and become
//! pending (the allocator's step, in `allocator`), pending tasks get a node (the scheduler's),
//! and a global service's pending task, made for one node, is assigned to it.
//! This file converts store objects into the scheduler's inputs and its answers into changes.

use std::collections::{BTreeMap, BTreeSet};
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

/// Allocates new tasks and schedules every pending one it can, in one batch: the store applies
/// an assignment only to a task that is pending by then, so a task whose allocation is skipped
/// is not placed either.
pub fn place(state: &ClusterState, now: SystemTime) -> Vec<Change> {
    let at = timestamp(now);
    let status = |task_state, message: &str, err: Option<String>| TaskStatus {
        timestamp: Some(at.clone()),
        state: Some(task_state),
        message: Some(message.to_string()),
        err,
        ..Default::default()
    };
    let mut changes = super::allocator::allocate(state, &at);
    let allocated: BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::TaskAllocate { task_id, .. } => Some(task_id.as_str()),
            _ => None,
        })
        .collect();
    let pending: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::RUNNING)
        .filter(|t| t.state() == TaskState::PENDING || allocated.contains(t.id.as_str()))
        .collect();
    // Made for a node (a global service's): that node it is.
    changes.extend(pending.iter().filter_map(|t| {
        Some(Change::TaskAssign {
            task_id: t.id.clone(),
            node_id: t.node_id.clone()?,
            status: status(TaskState::ASSIGNED, "scheduler assigned task to node", None),
        })
    }));
    let waiting: Vec<&Task> = pending
        .into_iter()
        .filter(|t| t.node_id.is_none())
        .collect();
    if waiting.is_empty() {
        return changes;
    }
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

#[cfg(test)]
mod tests {
    use bollard::models::{NodeState, NodeStatus, ServiceSpec, ServiceSpecMode};

    use super::*;
    use crate::store::objects::Meta;
    use crate::store::{Object, Proposal};

    fn global_task(id: &str, node: &str) -> Task {
        Task {
            id: id.into(),
            meta: Meta::default(),
            service_id: "svc".into(),
            slot: 0,
            node_id: Some(node.into()),
            generation: 1,
            spec: Default::default(),
            desired_state: TaskState::RUNNING,
            status: TaskStatus {
                state: Some(TaskState::NEW),
                ..Default::default()
            },
            networks: Vec::new(),
        }
    }

    #[test]
    fn a_global_task_is_allocated_then_assigned_to_its_node_in_one_batch() {
        let mut state = ClusterState::default();
        let node = Node {
            id: "n1".into(),
            meta: Meta::default(),
            spec: Default::default(),
            description: Default::default(),
            status: NodeStatus {
                state: Some(NodeState::READY),
                ..Default::default()
            },
            manager: None,
            ingress: None,
            balancers: Vec::new(),
        };
        let service = Service {
            id: "svc".into(),
            meta: Meta::default(),
            spec: ServiceSpec {
                mode: Some(ServiceSpecMode {
                    global: Some(Default::default()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            previous_spec: None,
            generation: 1,
            update_status: None,
            endpoint: Default::default(),
        };
        state.insert(Object::Node(node));
        state.insert(Object::Service(service));
        state.insert(Object::Task(global_task("t1", "n1")));
        let changes = place(&state, SystemTime::UNIX_EPOCH);
        state.apply(&Proposal { changes }, 5).unwrap();
        let task = &state.tasks["t1"];
        assert_eq!(task.state(), TaskState::ASSIGNED);
        assert_eq!(task.node_id.as_deref(), Some("n1"));
        assert!(place(&state, SystemTime::UNIX_EPOCH).is_empty());
    }
}
