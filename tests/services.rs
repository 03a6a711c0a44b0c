//! In-process orchestration tests: real daemons on loopback, tasks run by the process executor
//! (which needs root, as the daemon does).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::{
    NodeSpecAvailabilityEnum, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use common::{Cluster, eventually, service_spec};

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .map(|(host, n)| (host.to_string(), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicated_services_spread_move_and_refuse_stale_updates() {
    let mut cluster = Cluster::managers(1).await;
    cluster.set_heartbeat(0, Duration::from_secs(1)).await;
    for _ in 0..3 {
        cluster.join_worker().await;
    }
    cluster
        .create_service(0, service_spec("web", Some(8), &["sleep", "100001"]))
        .await;
    eventually("8 replicas spread 2/2/2/2", || async {
        cluster.running_per_node(0, "web").await
            == counts(&[("n1", 2), ("n2", 2), ("n3", 2), ("n4", 2)])
    })
    .await;

    let mut pinned = service_spec("pinned", Some(3), &["sleep", "100002"]);
    let template = pinned.task_template.as_mut().unwrap();
    template.placement = Some(bollard::models::TaskSpecPlacement {
        constraints: Some(vec!["node.hostname==n3".into()]),
        ..Default::default()
    });
    cluster.create_service(0, pinned).await;
    eventually("the constraint holds", || async {
        cluster.running_per_node(0, "pinned").await == counts(&[("n3", 3)])
    })
    .await;

    let err = cluster
        .update_service(0, "web", 1, false, |spec| {
            spec.labels = Some(Default::default())
        })
        .await
        .unwrap_err();
    assert!(err.contains("update out of sequence"), "{err}");

    let n2 = cluster.node_id(1).await;
    cluster
        .set_availability(0, &n2, NodeSpecAvailabilityEnum::DRAIN)
        .await;
    eventually("drain empties n2", || async {
        let running = cluster.running_per_node(0, "web").await;
        !running.contains_key("n2") && running.values().sum::<usize>() == 8
    })
    .await;
    cluster
        .set_availability(0, &n2, NodeSpecAvailabilityEnum::ACTIVE)
        .await;

    // A worker that dies: Down, and its tasks run elsewhere.
    let n4 = cluster.node_id(3).await;
    cluster.stop(3).await;
    eventually("n4 is down", || async {
        cluster.node_state(0, &n4).await == "down"
    })
    .await;
    eventually("web runs 8 tasks without n4", || async {
        let running = cluster.running_per_node(0, "web").await;
        !running.contains_key("n4") && running.values().sum::<usize>() == 8
    })
    .await;
    // Back, it stops what it no longer runs.
    cluster.start(3).await;
    eventually("n4 is ready again", || async {
        cluster.node_state(0, &n4).await == "ready"
    })
    .await;

    cluster.remove_service(0, "web").await;
    cluster.remove_service(0, "pinned").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn global_services_follow_nodes_and_updates_roll_and_roll_back() {
    let mut cluster = Cluster::managers(1).await;
    cluster.join_worker().await;
    cluster
        .create_service(0, service_spec("agent", None, &["sleep", "100003"]))
        .await;
    eventually("one task per node", || async {
        cluster.running_per_node(0, "agent").await == counts(&[("n1", 1), ("n2", 1)])
    })
    .await;
    cluster.join_worker().await;
    eventually("a joining node gets one too", || async {
        cluster.running_per_node(0, "agent").await == counts(&[("n1", 1), ("n2", 1), ("n3", 1)])
    })
    .await;
    let n2 = cluster.node_id(1).await;
    cluster
        .set_availability(0, &n2, NodeSpecAvailabilityEnum::DRAIN)
        .await;
    eventually("a drained node loses it", || async {
        cluster.running_per_node(0, "agent").await == counts(&[("n1", 1), ("n3", 1)])
    })
    .await;

    cluster
        .create_service(0, service_spec("web", Some(2), &["sleep", "100004"]))
        .await;
    eventually("web runs", || async {
        cluster
            .running_per_node(0, "web")
            .await
            .values()
            .sum::<usize>()
            == 2
    })
    .await;
    let has_env = |task: &bollard::models::Task| {
        task.spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.env.clone())
            .is_some()
    };
    cluster
        .update_service(0, "web", 0, false, |spec| {
            let container = spec
                .task_template
                .as_mut()
                .unwrap()
                .container_spec
                .as_mut()
                .unwrap();
            container.env = Some(vec!["A=B".into()]);
        })
        .await
        .unwrap();
    eventually("every running task has the new spec", || async {
        let tasks = cluster.tasks(0, "web").await;
        let running: Vec<_> = tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .collect();
        running.len() == 2 && running.iter().all(|t| has_env(t))
    })
    .await;
    cluster
        .update_service(0, "web", 0, true, |_| {})
        .await
        .unwrap();
    eventually("the rollback brings the old spec back", || async {
        let tasks = cluster.tasks(0, "web").await;
        let running: Vec<_> = tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .collect();
        running.len() == 2 && running.iter().all(|t| !has_env(t))
    })
    .await;

    cluster.remove_service(0, "agent").await;
    cluster.remove_service(0, "web").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_restart_policy_limits_attempts() {
    let mut cluster = Cluster::managers(1).await;
    let mut spec = service_spec("crash", Some(1), &["sh", "-c", "exit 3"]);
    spec.task_template.as_mut().unwrap().restart_policy = Some(TaskSpecRestartPolicy {
        condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
        delay: Some(0),
        max_attempts: Some(2),
        window: Some(0),
    });
    cluster.create_service(0, spec).await;
    let failed = || async {
        let tasks = cluster.tasks(0, "crash").await;
        tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::FAILED))
            .count()
    };
    eventually("two attempts fail", || async { failed().await == 2 }).await;
    let tasks = cluster.tasks(0, "crash").await;
    let exit = tasks[0]
        .status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code);
    assert_eq!(exit, Some(3));
    // Nothing else is pending either: the slot is left empty.
    assert!(
        tasks
            .iter()
            .all(|t| t.desired_state != Some(TaskState::RUNNING)
                || t.status.as_ref().and_then(|s| s.state) == Some(TaskState::FAILED))
    );
    cluster.remove_service(0, "crash").await;
    cluster.shutdown().await;
}
