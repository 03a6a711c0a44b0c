//! In-process cluster tests: real daemons on loopback in one process, driven through their
//! Docker API sockets with bollard, the way the docker CLI drives them. No root needed.

mod common;

use std::time::Duration;

use bollard::models::NodeSpecRoleEnum;
use common::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_fail_over_and_survive_restarts() {
    let mut cluster = Cluster::managers(3).await;
    let view = cluster.managers_view(0).await;
    assert_eq!(view.leaders, 1, "{view:?}");
    assert_eq!(view.reachable, 3, "{view:?}");

    // Kill the leader; another manager takes writes.
    let leader = cluster.leader_index().await;
    cluster.stop(leader).await;
    let survivor = (leader + 1) % 3;
    let token = cluster.rotate_worker_token(survivor).await;
    let other = (leader + 2) % 3;
    eventually("the rotated token reaches the third manager", || async {
        cluster.worker_token(other).await == token
    })
    .await;

    // The old leader comes back as a reachable manager.
    cluster.start(leader).await;
    eventually("the old leader is reachable again", || async {
        let view = cluster.managers_view(survivor).await;
        view.reachable == 3 && view.leaders == 1
    })
    .await;

    // Everything survives a restart of every node.
    for i in 0..3 {
        cluster.stop(i).await;
    }
    for i in 0..3 {
        cluster.start(i).await;
    }
    eventually("the swarm is back with its state", || async {
        cluster.worker_token(0).await == token && cluster.managers_view(0).await.leaders == 1
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_managers_keep_quorum_with_two_down() {
    let mut cluster = Cluster::managers(5).await;
    let leader = cluster.leader_index().await;
    let down = [(leader + 1) % 5, (leader + 2) % 5];
    for i in down {
        cluster.stop(i).await;
    }
    let token = cluster.rotate_worker_token(leader).await;
    let up = (0..5).find(|i| *i != leader && !down.contains(i)).unwrap();
    eventually("a write with two of five managers down", || async {
        cluster.worker_token(up).await == token
    })
    .await;
    eventually("the two dead managers are unreachable", || async {
        cluster.managers_view(leader).await.reachable == 3
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_are_promoted_and_demoted() {
    let mut cluster = Cluster::managers(1).await;
    let worker = cluster.join_worker().await;
    let id = cluster.node_id(worker).await;
    cluster
        .set_role(0, &id, NodeSpecRoleEnum::MANAGER)
        .await
        .unwrap();
    eventually("the promoted node is a reachable manager", || async {
        cluster.managers_view(0).await.reachable == 2
    })
    .await;
    eventually("the promoted node serves the manager API", || async {
        cluster
            .client(worker)
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await
            .is_ok()
    })
    .await;

    cluster
        .set_role(0, &id, NodeSpecRoleEnum::WORKER)
        .await
        .unwrap();
    eventually("the demoted node left Raft", || async {
        cluster.managers_view(0).await.managers == 1
    })
    .await;
    let first = cluster.node_id(0).await;
    let err = cluster
        .set_role(0, &first, NodeSpecRoleEnum::WORKER)
        .await
        .unwrap_err();
    assert!(err.contains("last manager"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_and_strangers_are_refused() {
    let mut cluster = Cluster::managers(1).await;
    let manager_addr = cluster.control_addr(0).await;
    let token = cluster.worker_token(0).await;

    // Right CA, wrong secret.
    let (digest, _) = token.rsplit_once('-').unwrap();
    let wrong_secret = format!("{digest}-{}", "1".repeat(25));
    let err = cluster
        .try_join(&wrong_secret, &manager_addr)
        .await
        .unwrap_err();
    assert!(err.contains("A valid join token is necessary"), "{err}");

    // A token for another CA.
    let other_ca = format!("SWMTKN-1-{}-{}", "2".repeat(50), "3".repeat(25));
    let err = cluster
        .try_join(&other_ca, &manager_addr)
        .await
        .unwrap_err();
    assert!(
        err.contains("remote CA does not match fingerprint"),
        "{err}"
    );

    // Plaintext on the control port gets nothing, and the manager keeps serving.
    assert!(common::plaintext_gets_no_answer(&manager_addr).await);
    let worker = cluster.join_worker().await;

    // A worker's certificate cannot make Raft calls.
    let answer = cluster.raft_vote_as(worker, &manager_addr).await;
    assert!(answer.contains("not a manager"), "{answer}");

    // A removed node's certificate is refused from then on.
    cluster.set_heartbeat(0, Duration::from_secs(1)).await;
    let id = cluster.node_id(worker).await;
    cluster.stop(worker).await;
    eventually("the stopped worker is down", || async {
        cluster.node_state(0, &id).await == "down"
    })
    .await;
    cluster.remove_node(0, &id).await.unwrap();
    let answer = cluster.heartbeat_as(worker, &manager_addr).await;
    assert!(answer.contains("removed"), "{answer}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_worker_is_down_and_a_live_one_cannot_be_removed() {
    let mut cluster = Cluster::managers(1).await;
    cluster.set_heartbeat(0, Duration::from_secs(1)).await;
    let worker = cluster.join_worker().await;
    let id = cluster.node_id(worker).await;
    eventually("the worker is ready", || async {
        cluster.node_state(0, &id).await == "ready"
    })
    .await;
    let err = cluster.remove_node(0, &id).await.unwrap_err();
    assert!(err.contains("is not down"), "{err}");
    cluster.stop(worker).await;
    eventually("the stopped worker is down", || async {
        cluster.node_state(0, &id).await == "down"
    })
    .await;
    cluster.start(worker).await;
    eventually("the restarted worker is ready again", || async {
        cluster.node_state(0, &id).await == "ready"
    })
    .await;
    cluster.shutdown().await;
}
