use clap::Parser as _;
use serde_json::json;

use super::*;

fn parse(line: &[&str]) -> UpdateArgs {
    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        args: UpdateArgs,
    }
    let line = std::iter::once("update").chain(line.iter().copied());
    Command::try_parse_from(line).unwrap().args
}

fn no_networks() -> NetworkChanges {
    NetworkChanges {
        add: Vec::new(),
        remove: Vec::new(),
    }
}

/// A service as docker created it, read back from the daemon.
fn current() -> ServiceSpec {
    serde_json::from_value(json!({
        "Name": "web",
        "Labels": {"tier": "web", "old": "1"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "sleep",
                "Args": ["1000"],
                "Env": ["A=1", "B=2", "C=3"],
                "Init": false,
                "DNSConfig": {}
            },
            "Resources": {"Limits": {}, "Reservations": {}},
            "RestartPolicy": {"Condition": "on-failure", "Delay": 3_000_000_000_i64,
                              "MaxAttempts": 4},
            "Placement": {
                "Constraints": ["node.role==worker", "node.labels.zone==a"],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.rack"}}]
            },
            "ForceUpdate": 2
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": {"Parallelism": 2, "FailureAction": "rollback",
                         "Monitor": 3_000_000_000_i64, "MaxFailureRatio": 0.0,
                         "Order": "start-first"},
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080,
                 "PublishMode": "ingress"},
                {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53,
                 "PublishMode": "ingress"}
            ]
        }
    }))
    .unwrap()
}

fn updated(line: &[&str]) -> serde_json::Value {
    let mut spec = current();
    parse(line).edit(&mut spec, &no_networks()).unwrap();
    serde_json::to_value(spec).unwrap()
}

#[test]
fn no_flag_changes_nothing() {
    let mut spec = current();
    parse(&["web"]).edit(&mut spec, &no_networks()).unwrap();
    assert_eq!(spec, current());
}

#[test]
fn removals_go_before_additions() {
    let spec = updated(&[
        "--env-rm",
        "B",
        "--env-add",
        "A=9",
        "--env-add",
        "D=4",
        "--label-rm",
        "old",
        "--label-add",
        "new=2",
        "--label-add",
        "tier=api",
        "--constraint-add",
        "node.hostname!=h3",
        "--constraint-rm",
        "node.role==worker",
        "--placement-pref-rm",
        "spread=node.labels.rack",
        "--placement-pref-add",
        "spread=node.labels.zone",
        "--image",
        "busybox:1",
        "--args",
        "httpd -f -p '8 0'",
        "web",
    ]);
    let container = &spec["TaskTemplate"]["ContainerSpec"];
    assert_eq!(container["Env"], json!(["C=3", "A=9", "D=4"]));
    assert_eq!(container["Image"], "busybox:1");
    assert_eq!(container["Args"], json!(["httpd", "-f", "-p", "8 0"]));
    assert_eq!(spec["Labels"], json!({"tier": "api", "new": "2"}));
    let placement = &spec["TaskTemplate"]["Placement"];
    assert_eq!(
        placement["Constraints"],
        json!(["node.hostname!=h3", "node.labels.zone==a"])
    );
    assert_eq!(
        placement["Preferences"],
        json!([{"Spread": {"SpreadDescriptor": "node.labels.zone"}}])
    );
}

#[test]
fn policies_given_merge_into_those_the_service_has() {
    let spec = updated(&[
        "--update-delay",
        "1s",
        "--restart-condition",
        "any",
        "--replicas",
        "5",
        "--limit-memory",
        "1g",
        "--stop-grace-period",
        "1m",
        "--force",
        "web",
    ]);
    assert_eq!(
        spec["UpdateConfig"],
        json!({"Parallelism": 2, "Delay": 1_000_000_000_i64, "FailureAction": "rollback",
               "Monitor": 3_000_000_000_i64, "MaxFailureRatio": 0.0, "Order": "start-first"})
    );
    assert_eq!(
        spec["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "any", "Delay": 3_000_000_000_i64, "MaxAttempts": 4})
    );
    assert_eq!(spec["Mode"], json!({"Replicated": {"Replicas": 5}}));
    assert_eq!(
        spec["TaskTemplate"]["Resources"],
        json!({"Limits": {"MemoryBytes": 1_073_741_824_i64}, "Reservations": {}})
    );
    let container = &spec["TaskTemplate"]["ContainerSpec"];
    assert_eq!(container["StopGracePeriod"], json!(60_000_000_000_i64));
    assert_eq!(spec["TaskTemplate"]["ForceUpdate"], 3);
    assert_eq!(spec.get("RollbackConfig"), None);
}

#[test]
fn published_ports_are_removed_by_target_and_added_sorted() {
    let spec = updated(&[
        "--publish-rm",
        "80",
        "--publish-add",
        "9090:90",
        "--publish-add",
        "53:53/udp",
        "--publish-add",
        "published=443,target=8443,mode=host",
        "web",
    ]);
    let ports: Vec<String> = spec["EndpointSpec"]["Ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}/{}",
                p["PublishedPort"], p["TargetPort"], p["PublishMode"]
            )
        })
        .collect();
    // Sorted as strings, as docker sorts them; 53/udp was already published.
    assert_eq!(
        ports,
        [
            "443:8443/\"host\"",
            "53:53/\"ingress\"",
            "9090:90/\"ingress\""
        ]
    );
    // A port removed by a protocol or mode it was not published with stays.
    let kept = updated(&["--publish-rm", "80/udp", "--publish-rm", "target=53", "web"]);
    assert_eq!(kept["EndpointSpec"]["Ports"].as_array().unwrap().len(), 2);
    let none = updated(&["--publish-rm", "8080:80", "--publish-rm", "53/udp", "web"]);
    assert_eq!(none["EndpointSpec"].get("Ports"), None);
}

#[test]
fn networks_are_attached_once_and_sorted() {
    let attachment = |id: &str| NetworkAttachmentConfig {
        target: Some(id.into()),
        ..Default::default()
    };
    let mut attached = Some(vec![attachment("n2"), attachment("n5")]);
    let changes = NetworkChanges {
        add: vec![attachment("n1"), attachment("n9")],
        remove: vec![attachment("n5")],
    };
    update_networks(&mut attached, &changes).unwrap();
    let targets: Vec<_> = attached
        .iter()
        .flatten()
        .map(|n| n.target.clone())
        .collect();
    assert_eq!(
        targets,
        [Some("n1".into()), Some("n2".into()), Some("n9".into())]
    );
    let again = NetworkChanges {
        add: vec![attachment("n2")],
        remove: Vec::new(),
    };
    let error = update_networks(&mut attached, &again).unwrap_err();
    assert_eq!(
        error.to_string(),
        "service is already attached to network n2"
    );
}

#[test]
fn rollback_takes_no_flag_that_changes_the_spec() {
    let mut spec = current();
    parse(&["--rollback", "-d", "-q", "web"])
        .edit(&mut spec, &no_networks())
        .unwrap();
    assert_eq!(spec, current());
    let error = parse(&["--rollback", "--force", "web"])
        .edit(&mut current(), &no_networks())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "other flags may not be combined with --rollback"
    );
}

#[test]
fn scale_and_replicas_need_a_replicated_service() {
    let mut global: ServiceSpec =
        serde_json::from_value(json!({"Name": "g", "Mode": {"Global": {}}})).unwrap();
    let error = parse(&["--replicas", "3", "g"])
        .edit(&mut global, &no_networks())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "replicas can only be used with replicated mode"
    );
    let scales = |line: &[&str]| {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: ScaleArgs,
        }
        let line = std::iter::once("scale").chain(line.iter().copied());
        Command::try_parse_from(line).map(|command| command.args.scales)
    };
    assert_eq!(
        scales(&["web=3", "api=x"]).unwrap(),
        [("web".into(), "3".into()), ("api".into(), "x".into())]
    );
    assert!(
        scales(&["web"])
            .unwrap_err()
            .to_string()
            .contains("invalid scale specifier")
    );
    assert!(scales(&[]).is_err());
}
