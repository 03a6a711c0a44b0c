use clap::Parser as _;
use serde_json::json;

use super::*;

fn try_parse(line: &[&str]) -> Result<CreateArgs, clap::Error> {
    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        args: CreateArgs,
    }
    let line = std::iter::once("create").chain(line.iter().copied());
    Command::try_parse_from(line).map(|command| command.args)
}

/// The spec `service create` sends for `line`, as JSON on the wire.
fn wire(line: &[&str]) -> serde_json::Value {
    let spec = try_parse(line).unwrap().spec(Vec::new()).unwrap();
    serde_json::to_value(spec).unwrap()
}

#[test]
fn a_plain_service_is_sent_as_docker_sends_it() {
    // The request of the wire trace in /work/shared/reference/docker-cli-wire-trace.md.
    let line = [
        "--replicas",
        "2",
        "--name",
        "hello-world",
        "--publish",
        "8089:80",
        "lab/busybox:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/bin",
    ];
    assert_eq!(
        wire(&line),
        json!({
            "Name": "hello-world",
            "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "lab/busybox:1",
                    "Args": ["httpd", "-f", "-p", "80", "-h", "/bin"],
                    "Init": false,
                    "DNSConfig": {}
                },
                "Resources": {"Limits": {}, "Reservations": {}},
                "Placement": {},
                "ForceUpdate": 0
            },
            "Mode": {"Replicated": {"Replicas": 2}},
            "EndpointSpec": {
                "Mode": "vip",
                "Ports": [{
                    "Protocol": "tcp",
                    "TargetPort": 80,
                    "PublishedPort": 8089,
                    "PublishMode": "ingress"
                }]
            }
        })
    );
}

#[test]
fn every_flag_lands_where_docker_puts_it() {
    // Compared with what docker 28.2 stored for the same command line.
    let line = [
        "--name",
        "full",
        "--replicas",
        "2",
        "--env",
        "A=1",
        "--env",
        "SHOAL_SURELY_UNSET_VARIABLE",
        "--env",
        "A=2",
        "--label",
        "tier=web",
        "--label",
        "solo",
        "--constraint",
        "node.role==manager",
        "--placement-pref",
        "spread=node.labels.zone",
        "--replicas-max-per-node",
        "2",
        "--publish",
        "8080:80",
        "--publish",
        "published=9000,target=90,protocol=udp,mode=host",
        "--restart-condition",
        "on-failure",
        "--restart-delay",
        "3s",
        "--restart-max-attempts",
        "4",
        "--restart-window",
        "1m",
        "--update-parallelism",
        "2",
        "--update-delay",
        "10s",
        "--update-monitor",
        "3s",
        "--update-failure-action",
        "rollback",
        "--update-order",
        "start-first",
        "--rollback-parallelism",
        "3",
        "--stop-grace-period",
        "20s",
        "--hostname",
        "hh",
        "--workdir",
        "/tmp",
        "--entrypoint",
        "sh -c",
        "--limit-cpu",
        "0.5",
        "--limit-memory",
        "64m",
        "--reserve-cpu",
        "0.25",
        "--reserve-memory",
        "32M",
        "-d",
        "sleep",
        "1000",
    ];
    assert_eq!(
        wire(&line),
        json!({
            "Name": "full",
            "Labels": {"solo": "", "tier": "web"},
            "TaskTemplate": {
                "ContainerSpec": {
                    // Docker's client tags an untagged image.
                    "Image": "sleep:latest",
                    "Command": ["sh", "-c"],
                    "Args": ["1000"],
                    "Hostname": "hh",
                    // A later value of a variable replaces the earlier one, at the end.
                    "Env": ["SHOAL_SURELY_UNSET_VARIABLE", "A=2"],
                    "Dir": "/tmp",
                    "Init": false,
                    "StopGracePeriod": 20_000_000_000_i64,
                    "DNSConfig": {}
                },
                "Resources": {
                    "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 67_108_864},
                    "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 33_554_432}
                },
                "RestartPolicy": {
                    "Condition": "on-failure",
                    "Delay": 3_000_000_000_i64,
                    "MaxAttempts": 4,
                    "Window": 60_000_000_000_i64
                },
                "Placement": {
                    "Constraints": ["node.role==manager"],
                    "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                    "MaxReplicas": 2
                },
                "ForceUpdate": 0
            },
            "Mode": {"Replicated": {"Replicas": 2}},
            "UpdateConfig": {
                "Parallelism": 2,
                "Delay": 10_000_000_000_i64,
                "FailureAction": "rollback",
                "Monitor": 3_000_000_000_i64,
                "MaxFailureRatio": 0.0,
                "Order": "start-first"
            },
            "RollbackConfig": {
                "Parallelism": 3,
                "FailureAction": "pause",
                "Monitor": 5_000_000_000_i64,
                "MaxFailureRatio": 0.0,
                "Order": "stop-first"
            },
            "EndpointSpec": {
                "Mode": "vip",
                "Ports": [
                    {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080,
                     "PublishMode": "ingress"},
                    {"Protocol": "udp", "TargetPort": 90, "PublishedPort": 9000,
                     "PublishMode": "host"}
                ]
            }
        })
    );
}

#[test]
fn defaults_fill_a_policy_only_when_one_of_its_flags_is_given() {
    let restart = wire(&["--restart-max-attempts", "3", "sleep"]);
    assert_eq!(
        restart["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "any", "Delay": 5_000_000_000_i64, "MaxAttempts": 3})
    );
    assert_eq!(restart.get("UpdateConfig"), None);
    let rollback = wire(&["--rollback-failure-action", "continue", "sleep"]);
    assert_eq!(
        rollback["RollbackConfig"],
        json!({"Parallelism": 1, "FailureAction": "continue", "Monitor": 5_000_000_000_i64,
               "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    assert_eq!(rollback["TaskTemplate"].get("RestartPolicy"), None);
    // Without --replicas, docker leaves the count to the daemon.
    assert_eq!(wire(&["sleep"])["Mode"], json!({"Replicated": {}}));
    assert_eq!(
        wire(&["--mode", "global", "sleep"])["Mode"],
        json!({"Global": {}})
    );
}

#[test]
fn arguments_after_the_image_belong_to_it() {
    let args = try_parse(&["--name", "x", "sh", "-c", "echo hi; sleep 9", "-d"]).unwrap();
    assert_eq!(args.image, "sh");
    assert_eq!(args.args, ["-c", "echo hi; sleep 9", "-d"]);
    assert_eq!(args.name.as_deref(), Some("x"));
}

#[test]
fn global_services_take_no_replica_counts() {
    let spec = |line: &[&str]| try_parse(line).unwrap().spec(Vec::new());
    let error = spec(&["--mode", "global", "--replicas", "2", "sleep"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "replicas can only be used with replicated mode"
    );
    let error = spec(&["--mode", "global", "--replicas-max-per-node", "1", "x"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "replicas-max-per-node can only be used with replicated or replicated-job mode"
    );
}

#[test]
fn bad_values_are_refused_when_parsing() {
    let error = |line: &[&str]| try_parse(line).unwrap_err().to_string();
    assert!(error(&["--update-failure-action", "retry", "x"]).contains("retry"));
    assert!(error(&["--rollback-failure-action", "rollback", "x"]).contains("rollback"));
    assert!(error(&["--limit-memory", "1x", "x"]).contains("invalid suffix: 'x'"));
    assert!(error(&["--restart-delay", "5", "x"]).contains("missing unit"));
    assert!(error(&["--replicas", "-1", "x"]).contains("-1"));
    assert!(error(&["--publish", "published=80", "x"]).contains("missing mandatory field"));
}
