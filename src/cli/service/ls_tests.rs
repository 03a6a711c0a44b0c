use serde_json::json;

use super::*;

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn port(published: i64, target: i64, protocol: &str, mode: &str) -> EndpointPortConfig {
    serde_json::from_value(json!({
        "Protocol": protocol, "TargetPort": target, "PublishedPort": published,
        "PublishMode": mode
    }))
    .unwrap()
}

#[test]
fn ports_join_consecutive_mappings_into_ranges() {
    let tcp = |published, target| port(published, target, "tcp", "ingress");
    assert_eq!(ports(&[tcp(8080, 80)]), "*:8080->80/tcp");
    assert_eq!(ports(&[tcp(81, 81), tcp(80, 80)]), "*:80-81->80-81/tcp");
    assert_eq!(ports(&[tcp(80, 80), tcp(81, 80)]), "*:80-81->80/tcp");
    assert_eq!(
        ports(&[tcp(80, 80), tcp(81, 81), tcp(82, 80)]),
        "*:80-81->80-81/tcp, *:82->80/tcp"
    );
    assert_eq!(
        ports(&[tcp(90, 90), tcp(80, 80)]),
        "*:80->80/tcp, *:90->90/tcp"
    );
    assert_eq!(
        ports(&[port(53, 53, "udp", "ingress"), tcp(53, 53)]),
        "*:53->53/tcp, *:53->53/udp"
    );
    // Host-mode ports bypass the routing mesh, and unallocated ones have no published port.
    assert_eq!(ports(&[port(8080, 80, "tcp", "host")]), "");
    assert_eq!(ports(&[tcp(0, 80)]), "");
    assert_eq!(ports(&[]), "");
}

#[test]
fn replicas_show_running_out_of_desired_and_the_per_node_limit() {
    let replicated = service(json!({
        "Spec": {"Mode": {"Replicated": {"Replicas": 3}},
                 "TaskTemplate": {"Placement": {"MaxReplicas": 2}}},
        "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 3}
    }));
    assert_eq!(replicas(&replicated), "2/3 (max 2 per node)");
    let global = service(json!({
        "Spec": {"Mode": {"Global": {}}, "TaskTemplate": {"Placement": {"MaxReplicas": 2}}},
        "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1}
    }));
    assert_eq!(replicas(&global), "1/1");
    assert_eq!(replicas(&service(json!({}))), "0/0");
}

#[test]
fn rows_and_table_match_docker_layout() {
    let web = service(json!({
        "ID": "7i3pk3g4p8e756gxsuz5mweal",
        "Spec": {
            "Name": "web",
            "TaskTemplate": {"ContainerSpec": {"Image": "nginx:1@sha256:abc"}},
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {"Mode": "vip", "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080,
                 "PublishMode": "ingress"}
            ]}
        },
        "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}
    }));
    let agent = service(json!({
        "ID": "9oo3rn6wuxjhlk99yt6dxv9qd",
        "Spec": {"Name": "agent", "TaskTemplate": {"ContainerSpec": {"Image": "sleep"}},
                 "Mode": {"Global": {}}},
        "Endpoint": {"Ports": [
            {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 30000,
             "PublishMode": "ingress"}
        ]},
        "ServiceStatus": {"RunningTasks": 0, "DesiredTasks": 2}
    }));
    let rows = [ServiceRow::new(&agent), ServiceRow::new(&web)];
    assert_eq!(
        service_table(&rows),
        "ID             NAME      MODE         REPLICAS   IMAGE     PORTS\n\
         9oo3rn6wuxjh   agent     global       0/2        sleep     *:30000->53/udp\n\
         7i3pk3g4p8e7   web       replicated   3/3        nginx:1   *:8080->80/tcp\n"
    );
    assert_eq!(
        json_lines(&rows[1..]).unwrap(),
        "{\"ID\":\"7i3pk3g4p8e7\",\"Image\":\"nginx:1\",\"Mode\":\"replicated\",\
         \"Name\":\"web\",\"Ports\":\"*:8080->80/tcp\",\"Replicas\":\"3/3\"}\n"
    );
}
