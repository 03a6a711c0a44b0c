use serde_json::json;

use super::*;

fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-11-25T02:10:00Z").unwrap()
}

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

#[test]
fn pretty_prints_every_setting_as_docker_does() {
    // What docker 28.2 stored and printed for the same `service create` line.
    let full = service(json!({
        "ID": "cz5c30k08kzzbgx8q1u7gm0x8",
        "Spec": {
            "Name": "full",
            "Labels": {"solo": "", "tier": "web"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "sleep:latest", "Command": ["sh", "-c"], "Args": ["1000"],
                    "Hostname": "hh", "Env": ["A=1", "B"], "Dir": "/tmp", "Init": false,
                    "StopGracePeriod": 20_000_000_000_i64, "DNSConfig": {}
                },
                "Resources": {
                    "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 67_108_864},
                    "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 33_554_432}
                },
                "RestartPolicy": {"Condition": "on-failure", "Delay": 3_000_000_000_i64,
                                  "MaxAttempts": 4, "Window": 60_000_000_000_i64},
                "Placement": {
                    "Constraints": ["node.role==manager"],
                    "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                    "MaxReplicas": 2
                },
                "ForceUpdate": 0
            },
            "Mode": {"Replicated": {"Replicas": 2}},
            "UpdateConfig": {"Parallelism": 2, "Delay": 10_000_000_000_i64,
                             "FailureAction": "rollback", "Monitor": 3_000_000_000_i64,
                             "MaxFailureRatio": 0, "Order": "start-first"},
            "RollbackConfig": {"Parallelism": 3, "FailureAction": "pause",
                               "Monitor": 5_000_000_000_i64, "MaxFailureRatio": 0,
                               "Order": "stop-first"},
            "EndpointSpec": {"Mode": "vip"}
        }
    }));
    assert_eq!(
        pretty(&full, now()),
        "\nID:\t\tcz5c30k08kzzbgx8q1u7gm0x8\nName:\t\tfull\nLabels:\n solo\n tier=web\n\
         Service Mode:\tReplicated\n Replicas:\t2\n\
         Placement:\n Constraints:\t[node.role==manager]\n \
         Preferences:   [spread=node.labels.zone]\n Max Replicas Per Node:   2\n\
         UpdateConfig:\n Parallelism:\t2\n Delay:\t\t10s\n On failure:\trollback\n \
         Monitoring Period: 3s\n Max failure ratio: 0\n Update order:      start-first\n\
         RollbackConfig:\n Parallelism:\t3\n On failure:\tpause\n Monitoring Period: 5s\n \
         Max failure ratio: 0\n Rollback order:    stop-first\n\
         ContainerSpec:\n Image:\t\tsleep:latest\n Args:\t\t1000 \n Env:\t\tA=1 B \n \
         Dir:\t\t/tmp\n Init:\t\tfalse\n\
         Resources:\n Reservations:\n  CPU:\t\t0.25\n  Memory:\t32MiB\n \
         Limits:\n  CPU:\t\t0.5\n  Memory:\t64MiB\n\
         Endpoint Mode:\tvip\n\n"
    );
}

#[test]
fn pretty_shows_update_status_networks_and_ports() {
    let web = service(json!({
        "ID": "7i3pk3g4p8e756gxsuz5mweal",
        "Spec": {
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox", "User": "nobody"},
                "Resources": {"Limits": {"Pids": 100}},
                "Networks": [{"Target": "net1"}, {"Target": "net2"}]
            },
            "Mode": {"Global": {}},
            "EndpointSpec": {"Mode": "vip", "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080,
                 "PublishMode": "ingress"}
            ]}
        },
        "UpdateStatus": {"State": "completed", "StartedAt": "2026-11-25T02:08:00Z",
                         "CompletedAt": "2026-11-25T02:08:59Z", "Message": "update completed"}
    }));
    assert_eq!(
        pretty(&web, now()),
        "\nID:\t\t7i3pk3g4p8e756gxsuz5mweal\nName:\t\tweb\nService Mode:\tGlobal\n\
         UpdateStatus:\n State:\t\tcompleted\n Started:\t2 minutes ago\n \
         Completed:\tAbout a minute ago\n Message:\tupdate completed\n\
         Placement:\nContainerSpec:\n Image:\t\tbusybox\n User: nobody\n\
         Resources:\n Limits:\n  PIDs:\t\t100\n\
         Networks: net1 net2 \nEndpoint Mode:\tvip\n\
         Ports:\n PublishedPort = 8080\n  Protocol = tcp\n  TargetPort = 80\n  \
         PublishMode = ingress \n\n"
    );
}

#[test]
fn a_rollback_in_progress_has_no_completion_time() {
    let rolling = service(json!({
        "Spec": {"Mode": {"Replicated": {}}},
        "UpdateStatus": {"State": "rollback_started", "StartedAt": "2026-11-25T02:09:55Z",
                         "CompletedAt": "2026-11-25T02:09:58Z",
                         "Message": "manually requested rollback"}
    }));
    let text = pretty(&rolling, now());
    assert!(
        text.contains(
            "Service Mode:\tReplicated\nUpdateStatus:\n State:\t\trollback_started\n \
             Started:\t5 seconds ago\n Message:\tmanually requested rollback\nPlacement:\n"
        ),
        "{text:?}"
    );
}
