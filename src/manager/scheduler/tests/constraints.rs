//! Placement constraints, key by key and operator by operator.

use super::*;

/// The nodes (out of a fixed, varied set) that `constraint` lets a task onto.
fn matching(constraint: &str) -> Vec<String> {
    let mut manager = labelled("m1", &[("zone", "east")]);
    manager.role = Role::Manager;
    manager.hostname = "alpha".to_owned();
    manager.addr = "10.0.0.1".to_owned();
    manager
        .engine_labels
        .insert("disk".to_owned(), "ssd".to_owned());
    let mut arm = labelled("w1", &[("zone", "west")]);
    arm.hostname = "beta".to_owned();
    arm.addr = "10.0.1.7".to_owned();
    arm.platform.arch = "aarch64".to_owned();
    let mut bare = node("w2");
    bare.hostname = "gamma".to_owned();
    bare.addr = "192.168.1.5".to_owned();
    bare.platform.os = "windows".to_owned();

    let mut constrained = group("web", 3);
    constrained.constraints = vec![constraint.to_owned()];
    constrained.max_replicas_per_node = 1;
    let schedule = place(vec![manager, arm, bare], constrained);
    let mut ids: Vec<String> = per_node(&schedule).into_keys().collect();
    ids.sort();
    ids
}

#[test]
fn each_constraint_key_matches_with_both_operators() {
    let cases: &[(&str, &[&str])] = &[
        ("node.id==w1", &["w1"]),
        ("node.id!=w1", &["m1", "w2"]),
        ("node.hostname==gamma", &["w2"]),
        ("node.hostname!=gamma", &["m1", "w1"]),
        ("node.ip==10.0.1.7", &["w1"]),
        ("node.ip!=10.0.1.7", &["m1", "w2"]),
        ("node.ip==10.0.0.0/16", &["m1", "w1"]),
        ("node.ip!=10.0.0.0/16", &["w2"]),
        ("node.role==manager", &["m1"]),
        ("node.role!=manager", &["w1", "w2"]),
        ("node.role==worker", &["w1", "w2"]),
        ("node.platform.os==windows", &["w2"]),
        ("node.platform.os!=windows", &["m1", "w1"]),
        ("node.platform.arch==aarch64", &["w1"]),
        ("node.platform.arch!=aarch64", &["m1", "w2"]),
        ("node.labels.zone==east", &["m1"]),
        ("node.labels.zone!=east", &["w1", "w2"]),
        ("engine.labels.disk==ssd", &["m1"]),
        ("engine.labels.disk!=ssd", &["w1", "w2"]),
    ];
    for &(constraint, expected) in cases {
        assert_eq!(matching(constraint), expected, "{constraint}");
    }
}

#[test]
fn a_missing_label_fails_equal_and_passes_not_equal() {
    // w2 has no zone label at all; w1's zone is west.
    assert_eq!(matching("node.labels.zone==west"), ["w1"]);
    assert_eq!(matching("node.labels.zone!=west"), ["m1", "w2"]);
    assert!(matching("node.labels.rack==r1").is_empty());
    assert_eq!(matching("node.labels.rack!=r1"), ["m1", "w1", "w2"]);
}

#[test]
fn keys_and_values_ignore_case_but_label_names_do_not() {
    assert_eq!(matching("NODE.Role == MANAGER"), ["m1"]);
    assert_eq!(matching("node.LABELS.zone==EAST"), ["m1"]);
    // `Zone` is another label, which no node has.
    assert!(matching("node.labels.Zone==east").is_empty());
}

#[test]
fn ip_constraints_compare_addresses_not_text() {
    let mut cluster = nodes(&["mapped", "v6", "unknown"]);
    cluster[0].addr = "::ffff:10.0.0.5".to_owned();
    cluster[1].addr = "2001:db8::2".to_owned();
    cluster[2].addr = String::new();
    let placed_on = |constraint: &str| {
        let mut constrained = group("web", 3);
        constrained.constraints = vec![constraint.to_owned()];
        constrained.max_replicas_per_node = 1;
        per_node(&place(cluster.clone(), constrained))
    };
    assert_eq!(placed_on("node.ip==10.0.0.5"), counts(&[("mapped", 1)]));
    assert_eq!(placed_on("node.ip==2001:0db8::0002"), counts(&[("v6", 1)]));
    assert_eq!(placed_on("node.ip==2001:db8::/32"), counts(&[("v6", 1)]));
    // A node without an address is in no network, so only `!=` takes it.
    assert_eq!(
        placed_on("node.ip!=10.0.0.0/8"),
        counts(&[("unknown", 1), ("v6", 1)])
    );
}

#[test]
fn whitespace_around_the_operator_is_allowed() {
    assert_eq!(matching("  node.hostname   !=   beta "), ["m1", "w2"]);
}

#[test]
fn all_constraints_must_hold() {
    let mut cluster = nodes(&["a", "b", "c"]);
    cluster[0].role = Role::Manager;
    cluster[1].labels.insert("ssd".to_owned(), "yes".to_owned());
    let mut constrained = group("web", 2);
    constrained.constraints = vec![
        "node.role!=manager".to_owned(),
        "node.labels.ssd==yes".to_owned(),
    ];
    let schedule = place(cluster, constrained);
    assert_eq!(per_node(&schedule), counts(&[("b", 2)]));
}

#[test]
fn invalid_constraints_refuse_the_group() {
    for constraint in [
        "node.foo==x",
        "node.role",
        "node.role=manager",
        "node.role===manager",
        "node.role==",
        "==manager",
        "node.labels.==x",
        "node.ip==banana",
        "node.ip==10.0.0.0/33",
        "node.hostname==a!b",
    ] {
        let mut bad = group("web", 1);
        bad.constraints = vec!["node.role==worker".to_owned(), constraint.to_owned()];
        let error = Scheduler::new(nodes(&["a"]), [])
            .schedule(bad)
            .expect_err(constraint);
        assert!(
            matches!(&error, PlacementError::InvalidConstraint { constraint: c, .. } if c == constraint),
            "{constraint}: {error:?}"
        );
        assert!(
            error.to_string().starts_with("invalid constraint: "),
            "{error}"
        );
        assert_eq!(
            validate_placement(&[constraint.to_owned()], &[]),
            Err(error)
        );
    }
}
