//! Placement preferences: spreading over label values before nodes.

use std::collections::BTreeMap;

use super::*;

#[test]
fn invalid_preferences_refuse_the_group() {
    for preference in ["node.labels.zone", "pack=node.labels.zone", "spread="] {
        let mut bad = group("web", 1);
        bad.preferences = vec![preference.to_owned()];
        let error = Scheduler::new(nodes(&["a"]), []).schedule(bad).unwrap_err();
        assert!(
            matches!(error, PlacementError::InvalidPreference { .. }),
            "{preference}"
        );
        assert_eq!(
            validate_placement(&[], &[preference.to_owned()]),
            Err(error)
        );
    }
}

/// Tasks placed per value of `label`, nodes lacking it counted under "".
fn per_label(
    cluster: &[NodeInfo],
    schedule: &GroupSchedule,
    label: &str,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for placement in &schedule.placements {
        let node = cluster.iter().find(|n| n.id == *placement.node_id).unwrap();
        let value = node.labels.get(label).cloned().unwrap_or_default();
        *counts.entry(value).or_default() += 1;
    }
    counts
}

fn spread_over(service: &str, tasks: usize, labels: &[&str]) -> TaskGroup {
    TaskGroup {
        preferences: labels
            .iter()
            .map(|l| format!("spread=node.labels.{l}"))
            .collect(),
        ..group(service, tasks)
    }
}

#[test]
fn preferences_split_tasks_evenly_between_label_values_not_nodes() {
    let cluster = vec![
        labelled("e1", &[("zone", "east")]),
        labelled("w1", &[("zone", "west")]),
        labelled("w2", &[("zone", "west")]),
        labelled("w3", &[("zone", "west")]),
    ];
    let schedule = place(cluster.clone(), spread_over("web", 6, &["zone"]));
    assert_eq!(
        per_label(&cluster, &schedule, "zone"),
        counts(&[("east", 3), ("west", 3)])
    );
    assert_eq!(
        per_node(&schedule),
        counts(&[("e1", 3), ("w1", 1), ("w2", 1), ("w3", 1)])
    );
}

#[test]
fn nodes_lacking_the_label_form_their_own_branch() {
    let cluster = vec![
        labelled("e1", &[("zone", "east")]),
        labelled("w1", &[("zone", "west")]),
        node("x1"),
        node("x2"),
    ];
    let schedule = place(cluster.clone(), spread_over("web", 6, &["zone"]));
    let expected = [("", 2), ("east", 2), ("west", 2)];
    assert_eq!(per_label(&cluster, &schedule, "zone"), counts(&expected));
}

#[test]
fn preferences_weigh_running_tasks_of_the_branch_even_on_unavailable_nodes() {
    let mut cluster = vec![
        labelled("e1", &[("zone", "east")]),
        labelled("e2", &[("zone", "east")]),
        labelled("w1", &[("zone", "west")]),
    ];
    cluster[1].availability = Availability::Drain;
    let running = existing("e2", "web", 2);
    let mut scheduler = Scheduler::new(cluster.clone(), running);
    let schedule = scheduler
        .schedule(spread_over("web", 4, &["zone"]))
        .unwrap();
    // East already has 2, so west catches up first, then they alternate.
    assert_eq!(
        per_label(&cluster, &schedule, "zone"),
        counts(&[("east", 1), ("west", 3)])
    );
}

#[test]
fn a_branch_without_eligible_nodes_is_passed_over() {
    let cluster = vec![
        labelled("e1", &[("zone", "east"), ("tier", "db")]),
        labelled("w1", &[("zone", "west")]),
        labelled("n1", &[("zone", "north")]),
    ];
    let mut constrained = spread_over("web", 4, &["zone"]);
    constrained.constraints = vec!["node.labels.tier!=db".to_owned()];
    let schedule = place(cluster.clone(), constrained);
    assert_eq!(
        per_label(&cluster, &schedule, "zone"),
        counts(&[("north", 2), ("west", 2)])
    );
}

#[test]
fn a_full_branch_leaves_its_share_to_the_others() {
    let cluster = vec![
        labelled("e1", &[("zone", "east")]),
        labelled("w1", &[("zone", "west")]),
        labelled("w2", &[("zone", "west")]),
    ];
    let mut capped = spread_over("web", 5, &["zone"]);
    capped.max_replicas_per_node = 2;
    let schedule = place(cluster.clone(), capped);
    assert_eq!(
        per_label(&cluster, &schedule, "zone"),
        counts(&[("east", 2), ("west", 3)])
    );
}

#[test]
fn preferences_nest_one_level_per_label() {
    let cluster = vec![
        labelled("a1", &[("dc", "one"), ("rack", "a")]),
        labelled("b1", &[("dc", "one"), ("rack", "b")]),
        labelled("b2", &[("dc", "one"), ("rack", "b")]),
        labelled("c1", &[("dc", "two"), ("rack", "c")]),
        labelled("c2", &[("dc", "two"), ("rack", "c")]),
        labelled("c3", &[("dc", "two"), ("rack", "c")]),
        labelled("c4", &[("dc", "two"), ("rack", "c")]),
    ];
    let schedule = place(cluster.clone(), spread_over("web", 8, &["dc", "rack"]));
    assert_eq!(
        per_label(&cluster, &schedule, "dc"),
        counts(&[("one", 4), ("two", 4)])
    );
    assert_eq!(
        per_node(&schedule),
        counts(&[
            ("a1", 2),
            ("b1", 1),
            ("b2", 1),
            ("c1", 1),
            ("c2", 1),
            ("c3", 1),
            ("c4", 1)
        ])
    );
}

#[test]
fn preferences_on_other_attributes_are_ignored_as_swarmkit_does() {
    let mut spread = spread_over("web", 4, &[]);
    spread.preferences = vec!["spread=node.hostname".to_owned()];
    assert_eq!(validate_placement(&[], &spread.preferences), Ok(()));
    let schedule = place(nodes(&["a", "b"]), spread);
    assert_eq!(per_node(&schedule), counts(&[("a", 2), ("b", 2)]));
}
