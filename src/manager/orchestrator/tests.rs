//! Orchestrator decisions on hand-made states.

use std::time::{Duration, SystemTime};

use bollard::models::{
    NodeSpec, NodeSpecAvailabilityEnum, NodeState, NodeStatus, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatus, ServiceUpdateStatusStateEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
    TaskStatus,
};

use super::reconcile;
use crate::store::objects::{Meta, timestamp};
use crate::store::{Change, ClusterState, Node, Object, Service, Task};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
}

fn node(id: &str, state: NodeState, availability: NodeSpecAvailabilityEnum) -> Node {
    Node {
        id: id.into(),
        meta: Meta::now(),
        spec: NodeSpec {
            availability: Some(availability),
            ..Default::default()
        },
        description: Default::default(),
        status: NodeStatus {
            state: Some(state),
            ..Default::default()
        },
        manager: None,
        ingress: None,
        balancers: Vec::new(),
    }
}

fn service(replicas: Option<i64>) -> Service {
    let mode = match replicas {
        Some(n) => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(n) }),
            ..Default::default()
        },
        None => ServiceSpecMode {
            global: Some(Default::default()),
            ..Default::default()
        },
    };
    let container = TaskSpecContainerSpec {
        image: Some("sleep".into()),
        ..Default::default()
    };
    Service {
        id: "svc".into(),
        meta: Meta::now(),
        spec: ServiceSpec {
            name: Some("web".into()),
            mode: Some(mode),
            task_template: Some(TaskSpec {
                container_spec: Some(container),
                ..Default::default()
            }),
            ..Default::default()
        },
        previous_spec: None,
        generation: 1,
        update_status: None,
        endpoint: Default::default(),
    }
}

fn task(id: &str, slot: u64, node: &str, state: TaskState, ended_ago: Duration) -> Task {
    let at = timestamp(now() - ended_ago);
    Task {
        id: id.into(),
        meta: Meta {
            version: 1,
            created_at: at.clone(),
            updated_at: at.clone(),
        },
        service_id: "svc".into(),
        slot,
        node_id: Some(node.into()),
        generation: 1,
        spec: Default::default(),
        desired_state: TaskState::RUNNING,
        status: TaskStatus {
            timestamp: Some(at),
            state: Some(state),
            ..Default::default()
        },
        networks: Vec::new(),
    }
}

fn state(nodes: Vec<Node>, service: Service, tasks: Vec<Task>) -> ClusterState {
    let mut state = ClusterState::default();
    for object in nodes
        .into_iter()
        .map(Object::Node)
        .chain([Object::Service(service)])
        .chain(tasks.into_iter().map(Object::Task))
    {
        state.insert(object);
    }
    state
}

fn ready(id: &str) -> Node {
    node(id, NodeState::READY, NodeSpecAvailabilityEnum::ACTIVE)
}

/// The slots (or nodes, for global services) that get a new task.
fn created(changes: &[Change]) -> Vec<(u64, Option<String>)> {
    let mut created: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Put {
                object: Object::Task(t),
                ..
            } => Some((t.slot, t.node_id.clone())),
            _ => None,
        })
        .collect();
    created.sort();
    created
}

/// The tasks told to stop.
fn stopped(changes: &[Change]) -> Vec<String> {
    let mut stopped: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::TaskDesired {
                task_id,
                desired: TaskState::SHUTDOWN,
                ..
            } => Some(task_id.clone()),
            _ => None,
        })
        .collect();
    stopped.sort();
    stopped
}

#[test]
fn a_new_replicated_service_gets_one_task_per_slot() {
    let changes = reconcile(&state(vec![ready("n1")], service(Some(3)), vec![]), now());
    assert_eq!(created(&changes), vec![(1, None), (2, None), (3, None)]);
}

#[test]
fn scaling_down_stops_the_highest_slots() {
    let tasks = (1..=4)
        .map(|s| {
            task(
                &format!("t{s}"),
                s,
                "n1",
                TaskState::RUNNING,
                Duration::ZERO,
            )
        })
        .collect();
    let changes = reconcile(&state(vec![ready("n1")], service(Some(2)), tasks), now());
    assert_eq!(stopped(&changes), vec!["t3", "t4"]);
    assert!(created(&changes).is_empty());
}

#[test]
fn a_failed_task_is_replaced_after_the_restart_delay() {
    let failed = |ago| {
        state(
            vec![ready("n1")],
            service(Some(1)),
            vec![task("t1", 1, "n1", TaskState::FAILED, ago)],
        )
    };
    let early = reconcile(&failed(Duration::from_secs(2)), now());
    assert_eq!(
        stopped(&early),
        vec!["t1"],
        "the dead task becomes history at once"
    );
    assert!(
        created(&early).is_empty(),
        "but the default 5 s delay has not passed"
    );
    let late = reconcile(&failed(Duration::from_secs(6)), now());
    assert_eq!(created(&late), vec![(1, None)]);
}

#[test]
fn restart_conditions_and_attempts_are_honoured() {
    let mut svc = service(Some(1));
    let policy = |condition, max_attempts| TaskSpecRestartPolicy {
        condition: Some(condition),
        delay: Some(0),
        max_attempts: Some(max_attempts),
        window: Some(0),
    };
    let template = svc.spec.task_template.as_mut().unwrap();
    template.restart_policy = Some(policy(TaskSpecRestartPolicyConditionEnum::ON_FAILURE, 0));
    let complete = vec![task(
        "t1",
        1,
        "n1",
        TaskState::COMPLETE,
        Duration::from_secs(1),
    )];
    assert!(
        created(&reconcile(
            &state(vec![ready("n1")], svc.clone(), complete),
            now()
        ))
        .is_empty()
    );

    let template = svc.spec.task_template.as_mut().unwrap();
    template.restart_policy = Some(policy(TaskSpecRestartPolicyConditionEnum::ANY, 2));
    let mut two_failures = vec![
        task("t1", 1, "n1", TaskState::FAILED, Duration::from_secs(3)),
        task("t2", 1, "n1", TaskState::FAILED, Duration::from_secs(1)),
    ];
    two_failures[0].desired_state = TaskState::SHUTDOWN;
    assert!(
        created(&reconcile(
            &state(vec![ready("n1")], svc, two_failures),
            now()
        ))
        .is_empty()
    );
}

#[test]
fn tasks_of_a_down_node_are_replaced_without_delay() {
    let nodes = vec![
        node("n1", NodeState::DOWN, NodeSpecAvailabilityEnum::ACTIVE),
        ready("n2"),
    ];
    let tasks = vec![task("t1", 1, "n1", TaskState::RUNNING, Duration::ZERO)];
    let changes = reconcile(&state(nodes, service(Some(1)), tasks), now());
    assert_eq!(stopped(&changes), vec!["t1"]);
    assert_eq!(created(&changes), vec![(1, None)]);
}

#[test]
fn a_drained_node_loses_its_replicated_tasks() {
    let nodes = vec![
        node("n1", NodeState::READY, NodeSpecAvailabilityEnum::DRAIN),
        ready("n2"),
    ];
    let tasks = vec![task("t1", 1, "n1", TaskState::RUNNING, Duration::ZERO)];
    let changes = reconcile(&state(nodes, service(Some(1)), tasks), now());
    assert_eq!(stopped(&changes), vec!["t1"]);
}

#[test]
fn a_global_service_runs_once_on_every_active_node() {
    let nodes = vec![
        ready("n1"),
        ready("n2"),
        node("n3", NodeState::READY, NodeSpecAvailabilityEnum::DRAIN),
        node("n4", NodeState::DOWN, NodeSpecAvailabilityEnum::ACTIVE),
        node("n5", NodeState::READY, NodeSpecAvailabilityEnum::PAUSE),
    ];
    let tasks = vec![
        task("t1", 0, "n1", TaskState::RUNNING, Duration::ZERO),
        task("t3", 0, "n3", TaskState::RUNNING, Duration::ZERO),
        task("t5", 0, "n5", TaskState::RUNNING, Duration::ZERO),
    ];
    let changes = reconcile(&state(nodes, service(None), tasks), now());
    assert_eq!(
        created(&changes),
        vec![(0, Some("n2".into()))],
        "only the active node without a task"
    );
    assert_eq!(
        stopped(&changes),
        vec!["t3"],
        "drain empties a node; pause keeps its task"
    );
}

fn updating(order: ServiceSpecUpdateConfigOrderEnum) -> Service {
    let mut svc = service(Some(3));
    svc.generation = 2;
    svc.update_status = Some(ServiceUpdateStatus {
        state: Some(ServiceUpdateStatusStateEnum::UPDATING),
        ..Default::default()
    });
    svc.spec.update_config = Some(ServiceSpecUpdateConfig {
        parallelism: Some(1),
        order: Some(order),
        ..Default::default()
    });
    svc
}

#[test]
fn a_rolling_update_replaces_one_task_at_a_time() {
    let tasks: Vec<Task> = (1..=3)
        .map(|s| {
            task(
                &format!("t{s}"),
                s,
                "n1",
                TaskState::RUNNING,
                Duration::ZERO,
            )
        })
        .collect();
    let stop_first = reconcile(
        &state(
            vec![ready("n1")],
            updating(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST),
            tasks.clone(),
        ),
        now(),
    );
    assert_eq!(stopped(&stop_first), vec!["t1"]);
    assert!(
        created(&stop_first).is_empty(),
        "stop-first starts the new task once the old one stopped"
    );
    let start_first = reconcile(
        &state(
            vec![ready("n1")],
            updating(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
            tasks,
        ),
        now(),
    );
    assert_eq!(created(&start_first), vec![(1, None)]);
    assert!(stopped(&start_first).is_empty());
}

#[test]
fn an_update_whose_new_task_fails_rolls_back() {
    let mut svc = updating(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST);
    svc.previous_spec = Some(service(Some(3)).spec);
    svc.spec.update_config.as_mut().unwrap().failure_action =
        Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK);
    let mut failed = task("new", 1, "n1", TaskState::FAILED, Duration::from_secs(1));
    failed.generation = 2;
    let changes = reconcile(&state(vec![ready("n1")], svc, vec![failed]), now());
    let rolled_back = changes.iter().find_map(|c| match c {
        Change::Put {
            object: Object::Service(s),
            ..
        } => Some(s.clone()),
        _ => None,
    });
    let rolled_back = rolled_back.expect("the service is rewritten");
    assert_eq!(rolled_back.generation, 3);
    assert_eq!(
        rolled_back.update_status.unwrap().state,
        Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
    );
    assert!(
        rolled_back.spec.update_config.is_none(),
        "the previous spec is back"
    );
}

#[test]
fn history_is_trimmed_to_the_retention_limit() {
    let mut tasks: Vec<Task> = (0..8u64)
        .map(|i| {
            let mut t = task(
                &format!("old{i}"),
                1,
                "n1",
                TaskState::FAILED,
                Duration::from_secs(100 - i),
            );
            t.desired_state = TaskState::SHUTDOWN;
            t
        })
        .collect();
    tasks.push(task("live", 1, "n1", TaskState::RUNNING, Duration::ZERO));
    let changes = reconcile(&state(vec![ready("n1")], service(Some(1)), tasks), now());
    let mut deleted: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Delete { key } => Some(key.id.as_str()),
            _ => None,
        })
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec!["old0", "old1", "old2"],
        "the three oldest of eight go, five stay"
    );
}

#[test]
fn an_update_completes_once_its_new_tasks_ran_a_monitor_period() {
    let new_task = |ran_for| {
        let mut t = task("new", 1, "n1", TaskState::RUNNING, ran_for);
        t.generation = 2;
        t
    };
    let completed = |changes: &[Change]| {
        changes.iter().any(|c| {
            matches!(c, Change::Put { object: Object::Service(s), .. }
                if s.update_status.as_ref().and_then(|u| u.state) == Some(ServiceUpdateStatusStateEnum::COMPLETED))
        })
    };
    let mut svc = updating(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST);
    svc.spec.mode = Some(ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
        ..Default::default()
    });
    let early = reconcile(
        &state(
            vec![ready("n1")],
            svc.clone(),
            vec![new_task(Duration::from_secs(2))],
        ),
        now(),
    );
    assert!(!completed(&early), "the default monitor is 5 s");
    let late = reconcile(
        &state(
            vec![ready("n1")],
            svc,
            vec![new_task(Duration::from_secs(6))],
        ),
        now(),
    );
    assert!(completed(&late));
}
