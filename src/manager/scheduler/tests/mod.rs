//! Scheduling scenarios, each checking one rule against hand-counted placements, and the
//! helpers that build them.

mod constraints;
mod filters;
mod preferences;
mod spread;

use std::collections::BTreeMap;

use super::*;

const GIB: i64 = 1 << 30;
const CPU: i64 = 1_000_000_000;

fn node(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.to_owned(),
        hostname: format!("host-{id}"),
        addr: "10.0.0.1".to_owned(),
        role: Role::Worker,
        platform: Platform {
            os: "linux".to_owned(),
            arch: "x86_64".to_owned(),
        },
        ready: true,
        availability: Availability::Active,
        resources: Resources {
            nano_cpus: 4 * CPU,
            memory_bytes: 8 * GIB,
        },
        ..NodeInfo::default()
    }
}

fn nodes(ids: &[&str]) -> Vec<NodeInfo> {
    ids.iter().map(|id| node(id)).collect()
}

fn labelled(id: &str, labels: &[(&str, &str)]) -> NodeInfo {
    let labels = labels.iter().map(|&(k, v)| (k.to_owned(), v.to_owned()));
    NodeInfo {
        labels: labels.collect(),
        ..node(id)
    }
}

fn group(service: &str, tasks: usize) -> TaskGroup {
    TaskGroup {
        service_id: service.to_owned(),
        task_ids: (1..=tasks).map(|i| format!("{service}.{i}")).collect(),
        ..TaskGroup::default()
    }
}

fn existing(node_id: &str, service: &str, count: usize) -> Vec<ExistingTask> {
    let task = ExistingTask {
        node_id: node_id.to_owned(),
        service_id: service.to_owned(),
        ..ExistingTask::default()
    };
    vec![task; count]
}

/// Tasks placed per node, nodes without any left out.
fn per_node(schedule: &GroupSchedule) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for placement in &schedule.placements {
        *counts.entry(placement.node_id.to_string()).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(id, n)| (id.to_owned(), n)).collect()
}

fn place(nodes: Vec<NodeInfo>, group: TaskGroup) -> GroupSchedule {
    Scheduler::new(nodes, [])
        .schedule(group)
        .expect("valid group")
}

/// The reason every unplaced task carries; they all share one.
fn reason(schedule: &GroupSchedule) -> &str {
    let first = &schedule.unplaced[0].reason;
    assert!(schedule.unplaced.iter().all(|u| &u.reason == first));
    first
}
