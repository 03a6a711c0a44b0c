use bollard::models::{
    ClusterInfo, EngineDescription, EngineDescriptionPlugins, ManagerStatus, NodeDescription,
    NodeSpec, NodeSpecAvailabilityEnum as Availability, NodeState, NodeStatus, Platform,
    Reachability, ResourceObject,
};

use super::*;
use crate::cli::node_pretty::pretty;

const LEADER: &str = "a1b2c3d4e5f6g7h8i9j0k1l2m";
const REACHABLE: &str = "n1o2p3q4r5s6t7u8v9w0x1y2z";
const WORKER: &str = "b9c8d7e6f5g4h3i2j1k0l9m8n";
const DOWN: &str = "c0d1e2f3g4h5i6j7k8l9m0n1o";

fn tls(root: &str) -> TlsInfo {
    TlsInfo {
        trust_root: Some(root.into()),
        cert_issuer_subject: Some("MBMxETAPBgNVBAMTCHN3YXJtLWNh".into()),
        cert_issuer_public_key: Some("MFkw".into()),
    }
}

/// A node as the daemon reports it; `manager` is `(leader, reachability)`.
fn node(
    id: &str,
    hostname: &str,
    state: NodeState,
    availability: Availability,
    manager: Option<(bool, Reachability)>,
) -> Node {
    Node {
        id: Some(id.into()),
        spec: Some(NodeSpec {
            availability: Some(availability),
            ..Default::default()
        }),
        description: Some(NodeDescription {
            hostname: Some(hostname.into()),
            engine: Some(EngineDescription {
                engine_version: Some("28.0.1".into()),
                ..Default::default()
            }),
            tls_info: Some(tls("ROOT")),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: Some(state),
            ..Default::default()
        }),
        manager_status: manager.map(|(leader, reachability)| ManagerStatus {
            leader: Some(leader),
            reachability: Some(reachability),
            addr: Some("10.0.0.1:2377".into()),
        }),
        ..Default::default()
    }
}

fn cluster_view(self_id: &str) -> SwarmInfo {
    SwarmInfo {
        node_id: Some(self_id.into()),
        cluster: Some(ClusterInfo {
            tls_info: Some(tls("ROOT")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cluster_nodes() -> Vec<Node> {
    use {Availability as A, NodeState as S, Reachability as R};
    let mut worker = node(WORKER, "worker10", S::READY, A::PAUSE, None);
    worker.description.as_mut().unwrap().engine = None;
    let mut down = node(DOWN, "worker2", S::DOWN, A::DRAIN, None);
    down.description
        .as_mut()
        .unwrap()
        .engine
        .as_mut()
        .unwrap()
        .engine_version = Some("28.0.0".into());
    vec![
        worker,
        node(
            REACHABLE,
            "manager2",
            S::READY,
            A::ACTIVE,
            Some((false, R::REACHABLE)),
        ),
        down,
        node(
            LEADER,
            "manager1",
            S::READY,
            A::ACTIVE,
            Some((true, R::REACHABLE)),
        ),
    ]
}

#[test]
fn rows_capitalise_states_and_mark_the_leader_and_self() {
    let view = cluster_view(LEADER);
    let nodes = cluster_nodes();
    let rows: Vec<NodeRow> = nodes.iter().map(|n| NodeRow::new(n, &view)).collect();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.status.as_str(),
                r.availability.as_str(),
                r.manager_status.as_str(),
                r.is_self,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (WORKER, "Ready", "Pause", "", false),
            (REACHABLE, "Ready", "Active", "Reachable", false),
            (DOWN, "Down", "Drain", "", false),
            (LEADER, "Ready", "Active", "Leader", true),
        ]
    );
    let unreachable = node(
        REACHABLE,
        "m",
        NodeState::UNKNOWN,
        Availability::ACTIVE,
        Some((false, Reachability::UNREACHABLE)),
    );
    let row = NodeRow::new(&unreachable, &view);
    assert_eq!(
        (row.status.as_str(), row.manager_status.as_str()),
        ("Unknown", "Unreachable")
    );
}

#[test]
fn tls_status_compares_the_node_certificate_issuer_with_the_cluster() {
    let current = tls("ROOT");
    let rotated = tls("NEW ROOT");
    assert_eq!(tls_status(Some(&current), Some(&current)), "Ready");
    assert_eq!(tls_status(Some(&current), Some(&rotated)), "Needs Rotation");
    assert_eq!(tls_status(Some(&current), None), "Unknown");
    assert_eq!(tls_status(None, Some(&current)), "Unknown");
    assert_eq!(
        tls_status(Some(&current), Some(&TlsInfo::default())),
        "Unknown"
    );
}

#[test]
fn node_table_matches_docker_layout() {
    let view = cluster_view(LEADER);
    let mut nodes = cluster_nodes();
    sort_by_hostname(&mut nodes);
    let rows: Vec<NodeRow> = nodes.iter().map(|n| NodeRow::new(n, &view)).collect();
    assert_eq!(
        node_table(&rows),
        "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n\
         a1b2c3d4e5f6g7h8i9j0k1l2m *   manager1   Ready     Active         Leader           28.0.1\n\
         n1o2p3q4r5s6t7u8v9w0x1y2z     manager2   Ready     Active         Reachable        28.0.1\n\
         c0d1e2f3g4h5i6j7k8l9m0n1o     worker2    Down      Drain                           28.0.0\n\
         b9c8d7e6f5g4h3i2j1k0l9m8n     worker10   Ready     Pause                           \n"
    );
}

#[test]
fn nodes_sort_by_natural_hostname_then_id() {
    let mut nodes = cluster_nodes();
    nodes.push(node(
        "0same",
        "worker2",
        NodeState::READY,
        Availability::ACTIVE,
        None,
    ));
    sort_by_hostname(&mut nodes);
    let order: Vec<&str> = nodes.iter().map(id).collect();
    assert_eq!(order, [LEADER, REACHABLE, "0same", DOWN, WORKER]);
}

#[test]
fn json_rows_use_docker_keys() {
    let row = NodeRow::new(&cluster_nodes()[3], &cluster_view(LEADER));
    assert_eq!(
        json_lines(&[row]).unwrap(),
        format!(
            "{{\"Availability\":\"Active\",\"EngineVersion\":\"28.0.1\",\"Hostname\":\"manager1\",\
             \"ID\":\"{LEADER}\",\"ManagerStatus\":\"Leader\",\"Self\":true,\"Status\":\"Ready\",\
             \"TLSStatus\":\"Ready\"}}\n"
        )
    );
}

#[test]
fn pretty_prints_a_manager_like_docker() {
    let mut manager = node(
        LEADER,
        "manager1",
        NodeState::READY,
        Availability::ACTIVE,
        Some((true, Reachability::REACHABLE)),
    );
    manager.created_at = Some("2024-05-01T10:11:12.500Z".into());
    let spec = manager.spec.as_mut().unwrap();
    spec.name = Some("front".into());
    spec.labels = Some([("zone".into(), "eu".into()), ("ssd".into(), String::new())].into());
    manager.status.as_mut().unwrap().addr = Some("10.0.0.1".into());
    let description = manager.description.as_mut().unwrap();
    description.platform = Some(Platform {
        architecture: Some("x86_64".into()),
        os: Some("linux".into()),
    });
    description.resources = Some(ResourceObject {
        nano_cpus: Some(4_000_000_000),
        memory_bytes: Some(8_348_520_448),
        ..Default::default()
    });
    description.tls_info = Some(tls(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    ));
    assert_eq!(
        pretty(&manager),
        format!(
            "ID:\t\t\t{LEADER}\n\
             Name:\t\t\tfront\n\
             Labels:\n - ssd\n - zone=eu\n\
             Hostname:              \tmanager1\n\
             Joined at:             \t2024-05-01 10:11:12.5 +0000 UTC\n\
             Status:\n State:\t\t\tReady\n Availability:         \tActive\n Address:\t\t10.0.0.1\n\
             Manager Status:\n Address:\t\t10.0.0.1:2377\n Raft Status:\t\tReachable\n Leader:\t\tYes\n\
             Platform:\n Operating System:\tlinux\n Architecture:\t\tx86_64\n\
             Resources:\n CPUs:\t\t\t4\n Memory:\t\t7.775GiB\n\
             Engine Version:\t\t28.0.1\n\
             TLS Info:\n TrustRoot:\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\n \
             Issuer Subject:\tMBMxETAPBgNVBAMTCHN3YXJtLWNh\n Issuer Public Key:\tMFkw\n"
        )
    );
}

#[test]
fn pretty_leaves_out_what_a_bare_worker_lacks() {
    let worker = Node {
        id: Some(WORKER.into()),
        ..Default::default()
    };
    assert_eq!(
        pretty(&worker),
        format!(
            "ID:\t\t\t{WORKER}\n\
             Hostname:              \t\n\
             Joined at:             \t0001-01-01 00:00:00 +0000 UTC\n\
             Status:\n State:\t\t\t\n Availability:         \t\n\
             Platform:\n Operating System:\t\n Architecture:\t\t\n\
             Resources:\n CPUs:\t\t\t0\n Memory:\t\t\n\
             Engine Version:\t\t\n"
        )
    );
}

#[test]
fn pretty_shows_status_message_plugins_and_engine_labels() {
    let mut follower = node(
        REACHABLE,
        "manager2",
        NodeState::DOWN,
        Availability::DRAIN,
        Some((false, Reachability::UNREACHABLE)),
    );
    follower.status.as_mut().unwrap().message = Some("heartbeat failure".into());
    let engine = follower
        .description
        .as_mut()
        .unwrap()
        .engine
        .as_mut()
        .unwrap();
    let plugin = |typ: &str, name: &str| EngineDescriptionPlugins {
        typ: Some(typ.into()),
        name: Some(name.into()),
    };
    engine.plugins = Some(vec![
        plugin("Volume", "local"),
        plugin("Network", "overlay"),
        plugin("Network", "bridge"),
    ]);
    engine.labels = Some([("tier".into(), "db".into())].into());
    let text = pretty(&follower);
    let expected = [
        "Status:\n State:\t\t\tDown\n Message:              \tHeartbeat failure\n \
         Availability:         \tDrain\n",
        "Manager Status:\n Address:\t\t10.0.0.1:2377\n Raft Status:\t\tUnreachable\n \
         Leader:\t\tNo\n",
        "Plugins:\n Network:\t\toverlay, bridge\n Volume:\t\tlocal\n\
         Engine Version:\t\t28.0.1\nEngine Labels:\n - tier=db\n",
    ];
    for part in expected {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
}
