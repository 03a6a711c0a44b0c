//! The filters that keep nodes from a group, and the reasons given when none is left.

use super::*;

#[test]
fn down_paused_and_drained_nodes_take_nothing() {
    let mut cluster = nodes(&["up", "down", "paused", "drained"]);
    cluster[1].ready = false;
    cluster[2].availability = Availability::Pause;
    cluster[3].availability = Availability::Drain;
    let schedule = place(cluster.clone(), group("web", 3));
    assert_eq!(per_node(&schedule), counts(&[("up", 3)]));

    cluster.remove(0);
    let schedule = place(cluster, group("web", 2));
    assert!(schedule.placements.is_empty());
    assert_eq!(
        reason(&schedule),
        "no suitable node (3 nodes not available for new tasks)"
    );
}

#[test]
fn an_empty_cluster_has_no_suitable_node() {
    let schedule = place(Vec::new(), group("web", 1));
    assert_eq!(reason(&schedule), "no suitable node");
}

#[test]
fn a_node_without_room_is_skipped_and_reservations_add_up() {
    let mut cluster = nodes(&["big", "small", "tiny"]);
    cluster[0].resources.nano_cpus = 2 * CPU;
    cluster[1].resources.nano_cpus = CPU;
    cluster[2].resources.nano_cpus = CPU / 2;
    let mut heavy = group("web", 4);
    heavy.reservations = Resources {
        nano_cpus: CPU,
        memory_bytes: GIB,
    };
    let schedule = place(cluster, heavy);
    assert_eq!(per_node(&schedule), counts(&[("big", 2), ("small", 1)]));
    assert_eq!(schedule.unplaced.len(), 1);
    assert_eq!(
        reason(&schedule),
        "no suitable node (insufficient resources on 3 nodes)"
    );
}

#[test]
fn reservations_of_running_tasks_count() {
    let hog = ExistingTask {
        node_id: "a".to_owned(),
        service_id: "db".to_owned(),
        reservations: Resources {
            nano_cpus: 0,
            memory_bytes: 7 * GIB,
        },
        host_ports: Vec::new(),
    };
    let mut scheduler = Scheduler::new(nodes(&["a", "b"]), [hog]);
    let mut heavy = group("web", 2);
    heavy.reservations.memory_bytes = 2 * GIB;
    let schedule = scheduler.schedule(heavy).unwrap();
    assert_eq!(per_node(&schedule), counts(&[("b", 2)]));
    // Tasks that reserve nothing still go anywhere.
    let schedule = scheduler.schedule(group("light", 2)).unwrap();
    assert_eq!(per_node(&schedule), counts(&[("a", 1), ("b", 1)]));
}

#[test]
fn max_replicas_per_node_caps_each_node() {
    let mut running = existing("a", "web", 1);
    running.extend(existing("b", "other", 5));
    let mut scheduler = Scheduler::new(nodes(&["a", "b", "c"]), running);
    let mut capped = group("web", 5);
    capped.max_replicas_per_node = 2;
    let schedule = scheduler.schedule(capped).unwrap();
    assert_eq!(per_node(&schedule), counts(&[("a", 1), ("b", 2), ("c", 2)]));
    assert_eq!(schedule.unplaced.len(), 0);

    let mut capped = group("web", 2);
    capped.max_replicas_per_node = 2;
    let schedule = scheduler.schedule(capped).unwrap();
    assert!(schedule.placements.is_empty());
    assert_eq!(
        reason(&schedule),
        "no suitable node (max replicas per node limit exceed)"
    );
}

#[test]
fn host_ports_conflict_with_running_tasks_and_within_the_group() {
    let http = HostPort {
        published: 80,
        protocol: Protocol::Tcp,
    };
    let dns = HostPort {
        published: 80,
        protocol: Protocol::Udp,
    };
    let holder = ExistingTask {
        node_id: "a".to_owned(),
        service_id: "proxy".to_owned(),
        reservations: Resources::default(),
        host_ports: vec![http],
    };
    let mut scheduler = Scheduler::new(nodes(&["a", "b", "c"]), [holder]);
    let mut web = group("web", 3);
    web.host_ports = vec![http];
    let schedule = scheduler.schedule(web).unwrap();
    assert_eq!(per_node(&schedule), counts(&[("b", 1), ("c", 1)]));
    assert_eq!(
        reason(&schedule),
        "no suitable node (host-mode port already in use on 3 nodes)"
    );

    // The same number over another protocol is free everywhere.
    let mut udp = group("dns", 3);
    udp.host_ports = vec![dns];
    let schedule = scheduler.schedule(udp).unwrap();
    assert_eq!(per_node(&schedule), counts(&[("a", 1), ("b", 1), ("c", 1)]));
}

#[test]
fn platforms_limit_nodes_with_architecture_aliases() {
    let mut cluster = nodes(&["intel", "arm", "win"]);
    cluster[1].platform.arch = "aarch64".to_owned();
    cluster[2].platform.os = "windows".to_owned();
    let mut image = group("web", 2);
    image.platforms = vec![Platform {
        os: "linux".to_owned(),
        arch: "arm64".to_owned(),
    }];
    let schedule = place(cluster.clone(), image.clone());
    assert_eq!(per_node(&schedule), counts(&[("arm", 2)]));

    image.platforms[0].arch = "ppc64le".to_owned();
    let schedule = place(cluster.clone(), image.clone());
    assert_eq!(
        reason(&schedule),
        "no suitable node (unsupported platform on 3 nodes)"
    );

    // An empty field accepts anything; amd64 is x86_64.
    image.platforms = vec![
        Platform {
            os: String::new(),
            arch: "amd64".to_owned(),
        },
        Platform {
            os: "windows".to_owned(),
            arch: String::new(),
        },
    ];
    let schedule = place(cluster, image);
    assert_eq!(per_node(&schedule), counts(&[("intel", 1), ("win", 1)]));
}

#[test]
fn explanations_list_the_most_frequent_failure_first() {
    let mut cluster = nodes(&["a", "b", "c", "d", "e"]);
    cluster[0].availability = Availability::Drain;
    cluster[1].resources.memory_bytes = 0;
    cluster[2].resources.memory_bytes = 0;
    let mut picky = group("web", 1);
    picky.constraints = vec!["node.labels.gpu==yes".to_owned()];
    picky.reservations.memory_bytes = GIB;
    let schedule = place(cluster, picky);
    // Each node counts once, for the first filter it fails: the drained node is not
    // counted under constraints, nor the small ones.
    assert_eq!(
        reason(&schedule),
        "no suitable node (insufficient resources on 2 nodes; \
         scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)"
    );
}
