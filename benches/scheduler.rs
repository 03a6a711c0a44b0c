//! How long the scheduler takes to place many tasks, on the scales swarmkit's own benchmarks
//! use (it took 189 ms for 1k tasks on 1k nodes and 22.6 s for 100k).
//!
//! Each iteration builds a fresh scheduler from the nodes and places every group, so the
//! time includes indexing the cluster. Run with `cargo bench --bench scheduler`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shoal::manager::scheduler::{
    Availability, NodeInfo, Platform, Resources, Role, Scheduler, TaskGroup,
};

const NODES: usize = 1_000;
const ZONES: usize = 10;

/// A cluster of `NODES` ready nodes in `ZONES` zones, one node in ten a manager.
fn cluster() -> Vec<NodeInfo> {
    (0..NODES)
        .map(|i| NodeInfo {
            id: format!("node-{i:04}"),
            hostname: format!("host-{i:04}"),
            addr: format!("10.0.{}.{}", i / 250, i % 250 + 1),
            role: if i % 10 == 0 {
                Role::Manager
            } else {
                Role::Worker
            },
            platform: Platform {
                os: "linux".to_owned(),
                arch: "x86_64".to_owned(),
            },
            labels: BTreeMap::from([("zone".to_owned(), format!("zone-{}", i % ZONES))]),
            engine_labels: BTreeMap::new(),
            ready: true,
            availability: Availability::Active,
            resources: Resources {
                nano_cpus: 64_000_000_000,
                memory_bytes: 256 << 30,
            },
        })
        .collect()
}

/// `services` groups of `tasks` tasks each, reserving a little so the resource filter works.
fn groups(services: usize, tasks: usize) -> Vec<TaskGroup> {
    (0..services)
        .map(|s| TaskGroup {
            service_id: format!("service-{s:03}"),
            task_ids: (0..tasks).map(|t| format!("task-{s:03}-{t:06}")).collect(),
            reservations: Resources {
                nano_cpus: 1_000_000,
                memory_bytes: 1 << 20,
            },
            ..TaskGroup::default()
        })
        .collect()
}

/// Times placing `groups` on a fresh scheduler over `nodes`.
fn bench(c: &mut Criterion, group: &str, name: &str, nodes: &[NodeInfo], groups: &[TaskGroup]) {
    let mut bench_group = c.benchmark_group(group);
    bench_group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    bench_group.bench_function(name, |b| {
        b.iter_batched(
            || (nodes.to_vec(), groups.to_vec()),
            |(nodes, groups)| {
                let mut scheduler = Scheduler::new(nodes, []);
                for group in groups {
                    black_box(scheduler.schedule(group).expect("valid group"));
                }
            },
            BatchSize::LargeInput,
        );
    });
    bench_group.finish();
}

fn scheduling(c: &mut Criterion) {
    let nodes = cluster();
    bench(
        c,
        "1k tasks on 1k nodes",
        "one service",
        &nodes,
        &groups(1, 1_000),
    );
    bench(
        c,
        "100k tasks on 1k nodes",
        "one service",
        &nodes,
        &groups(1, 100_000),
    );
    bench(
        c,
        "100k tasks on 1k nodes",
        "100 services",
        &nodes,
        &groups(100, 1_000),
    );

    let mut constrained = groups(1, 100_000);
    constrained[0].constraints = vec!["node.role != manager".to_owned()];
    constrained[0].preferences = vec!["spread=node.labels.zone".to_owned()];
    bench(
        c,
        "100k tasks on 1k nodes with a constraint and a preference",
        "one service",
        &nodes,
        &constrained,
    );
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
