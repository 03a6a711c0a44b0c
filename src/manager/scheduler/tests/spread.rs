//! The spread rule: fewest tasks of the service, then fewest in all, then smallest ID.

use std::collections::BTreeMap;

use super::*;

#[test]
fn spread_evens_tasks_over_nodes() {
    let schedule = place(nodes(&["a", "b", "c", "d"]), group("web", 8));
    let expected = [("a", 2), ("b", 2), ("c", 2), ("d", 2)];
    assert_eq!(per_node(&schedule), counts(&expected));
    assert!(schedule.unplaced.is_empty());
}

#[test]
fn placements_follow_task_order_and_ties_go_to_the_smallest_id() {
    let schedule = place(nodes(&["c", "a", "b"]), group("web", 3));
    let placed: Vec<(&str, &str)> = schedule
        .placements
        .iter()
        .map(|p| (p.task_id.as_str(), &*p.node_id))
        .collect();
    assert_eq!(placed, [("web.1", "a"), ("web.2", "b"), ("web.3", "c")]);
}

#[test]
fn spread_counts_tasks_already_running() {
    let mut running = existing("a", "web", 3);
    running.extend(existing("b", "web", 1));
    let mut scheduler = Scheduler::new(nodes(&["a", "b", "c", "d"]), running);
    let schedule = scheduler.schedule(group("web", 5)).unwrap();
    // 9 tasks in all: a keeps its 3, the others reach 2.
    assert_eq!(per_node(&schedule), counts(&[("b", 1), ("c", 2), ("d", 2)]));
}

#[test]
fn ties_on_the_service_go_to_the_node_with_fewer_tasks_in_all() {
    let running = existing("a", "db", 2);
    let mut scheduler = Scheduler::new(nodes(&["a", "b"]), running);
    let schedule = scheduler.schedule(group("web", 1)).unwrap();
    assert_eq!(per_node(&schedule), counts(&[("b", 1)]));
    // b now leads in web, so the next web task goes to a despite its db tasks.
    let schedule = scheduler.schedule(group("web", 1)).unwrap();
    assert_eq!(per_node(&schedule), counts(&[("a", 1)]));
}

#[test]
fn groups_placed_earlier_weigh_on_later_ones() {
    let mut scheduler = Scheduler::new(nodes(&["a", "b"]), []);
    let first = scheduler.schedule(group("web", 1)).unwrap();
    let second = scheduler.schedule(group("db", 1)).unwrap();
    assert_eq!(per_node(&first), counts(&[("a", 1)]));
    assert_eq!(per_node(&second), counts(&[("b", 1)]));
}

/// The spread rule applied the slow way: every task scans every node.
fn naive(cluster: &[NodeInfo], running: &[ExistingTask], groups: &[TaskGroup]) -> Vec<Vec<String>> {
    let mut service: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut total: BTreeMap<String, u32> = BTreeMap::new();
    let mut cpu: BTreeMap<String, i64> = BTreeMap::new();
    for task in running {
        *service
            .entry((task.node_id.clone(), task.service_id.clone()))
            .or_default() += 1;
        *total.entry(task.node_id.clone()).or_default() += 1;
        *cpu.entry(task.node_id.clone()).or_default() += task.reservations.nano_cpus;
    }
    let mut result = Vec::new();
    for group in groups {
        let mut placed = Vec::new();
        for _ in &group.task_ids {
            let best = cluster
                .iter()
                .filter(|n| n.ready && n.availability == Availability::Active)
                .filter(|n| {
                    let used = cpu.get(&n.id).copied().unwrap_or(0);
                    let wanted = group.reservations.nano_cpus;
                    wanted == 0 || wanted <= n.resources.nano_cpus - used
                })
                .map(|n| {
                    let s = service
                        .get(&(n.id.clone(), group.service_id.clone()))
                        .copied();
                    (
                        s.unwrap_or(0),
                        total.get(&n.id).copied().unwrap_or(0),
                        n.id.clone(),
                    )
                })
                .filter(|&(s, _, _)| {
                    group.max_replicas_per_node == 0 || u64::from(s) < group.max_replicas_per_node
                })
                .min();
            let Some((_, _, id)) = best else { break };
            *service
                .entry((id.clone(), group.service_id.clone()))
                .or_default() += 1;
            *total.entry(id.clone()).or_default() += 1;
            *cpu.entry(id.clone()).or_default() += group.reservations.nano_cpus;
            placed.push(id);
        }
        result.push(placed);
    }
    result
}

#[test]
fn the_heaps_agree_with_a_full_scan_on_a_random_cluster() {
    // A small linear congruential generator keeps the test deterministic.
    let mut seed: u64 = 0x5eed;
    let mut next = |bound: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % bound
    };
    let mut cluster = Vec::new();
    for i in 0..40 {
        let mut n = node(&format!("n{i:02}"));
        n.resources.nano_cpus = (1 + next(8) as i64) * CPU;
        n.ready = next(10) != 0;
        if next(10) == 0 {
            n.availability = Availability::Pause;
        }
        cluster.push(n);
    }
    let mut running = Vec::new();
    for _ in 0..60 {
        let mut task =
            existing(&format!("n{:02}", next(40)), &format!("s{}", next(5)), 1).remove(0);
        task.reservations.nano_cpus = next(2) as i64 * CPU / 2;
        running.push(task);
    }
    let mut groups = Vec::new();
    for g in 0..12 {
        let mut tasks = group(&format!("s{}", next(5)), 1 + next(120) as usize);
        tasks.reservations.nano_cpus = next(3) as i64 * CPU / 4;
        tasks.max_replicas_per_node = next(5);
        tasks
            .task_ids
            .iter_mut()
            .for_each(|id| id.push_str(&format!("-g{g}")));
        groups.push(tasks);
    }

    let expected = naive(&cluster, &running, &groups);
    let mut scheduler = Scheduler::new(cluster, running);
    for (tasks, expected) in groups.into_iter().zip(expected) {
        let schedule = scheduler.schedule(tasks).unwrap();
        let placed: Vec<String> = schedule
            .placements
            .iter()
            .map(|p| p.node_id.to_string())
            .collect();
        assert_eq!(placed, expected);
    }
}
