//! swarmkit's filter pipeline: the checks a node must pass to take a task of a group, and the
//! `no suitable node (...)` explanation built from the checks that failed.

use super::constraint::Constraint;
use super::load::NodeLoad;
use super::model::{
    Availability, HostPort, NodeInfo, PlacementError, Platform, Resources, TaskGroup,
};
use super::spread::Rank;

/// One check of the pipeline. A node is rejected by the first check it fails, in swarmkit's
/// order, so each rejected node is counted once in the explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Filter {
    /// The node is ready and active (paused and drained nodes take no new tasks).
    Ready,
    /// The task's reservations fit in what the node has left.
    Resources,
    /// The group's constraints hold on the node.
    Constraints,
    /// The node runs one of the image's platforms.
    Platform,
    /// None of the group's host-mode ports is taken on the node.
    HostPorts,
    /// The node runs fewer tasks of the service than the per-node limit.
    MaxReplicas,
}

impl Filter {
    /// The pipeline, in swarmkit's order.
    const PIPELINE: [Filter; 6] = [
        Filter::Ready,
        Filter::Resources,
        Filter::Constraints,
        Filter::Platform,
        Filter::HostPorts,
        Filter::MaxReplicas,
    ];

    /// The checks a placement can make a node fail: placing a task only adds load, so a
    /// node that passed the others still does.
    const LOAD: [Filter; 3] = [Filter::Resources, Filter::HostPorts, Filter::MaxReplicas];

    /// swarmkit's wording for this check failing on `nodes` nodes.
    fn explain(self, nodes: usize) -> String {
        let node_s = if nodes == 1 { "node" } else { "nodes" };
        let on_nodes = |what: &str| format!("{what} on {nodes} {node_s}");
        match self {
            Filter::Ready => format!("{nodes} {node_s} not available for new tasks"),
            Filter::Resources => on_nodes("insufficient resources"),
            Filter::Constraints => on_nodes("scheduling constraints not satisfied"),
            Filter::Platform => on_nodes("unsupported platform"),
            Filter::HostPorts => on_nodes("host-mode port already in use"),
            // swarmkit gives no count for this one.
            Filter::MaxReplicas => "max replicas per node limit exceed".to_owned(),
        }
    }
}

/// A node, its load, and how many tasks of the group's service it runs.
#[derive(Clone, Copy)]
pub(super) struct Candidate<'a> {
    /// The node.
    pub(super) node: &'a NodeInfo,
    /// What runs on it.
    pub(super) load: &'a NodeLoad,
    /// How many of those tasks belong to the group's service.
    pub(super) service_tasks: u32,
}

impl Candidate<'_> {
    /// The node's rank for spread.
    pub(super) fn rank(&self) -> Rank {
        Rank {
            service_tasks: self.service_tasks,
            total_tasks: self.load.total_tasks,
        }
    }
}

/// A group's placement rules, parsed once and checked against every node.
pub(super) struct Requirements<'g> {
    constraints: Vec<Constraint>,
    platforms: &'g [Platform],
    reservations: Resources,
    host_ports: &'g [HostPort],
    max_replicas_per_node: u64,
}

impl<'g> Requirements<'g> {
    /// Parses the group's constraints; an invalid one refuses the whole group.
    pub(super) fn of(group: &'g TaskGroup) -> Result<Requirements<'g>, PlacementError> {
        Ok(Requirements {
            constraints: Constraint::parse_all(&group.constraints)?,
            platforms: &group.platforms,
            reservations: group.reservations,
            host_ports: &group.host_ports,
            max_replicas_per_node: group.max_replicas_per_node,
        })
    }

    /// The first check `candidate` fails, or `None` when it can take a task.
    pub(super) fn first_failure(&self, candidate: Candidate) -> Option<Filter> {
        Filter::PIPELINE
            .into_iter()
            .find(|&filter| !self.passes(filter, candidate))
    }

    /// Whether a node that could take a task before a placement on it can take another.
    pub(super) fn still_fits(&self, candidate: Candidate) -> bool {
        Filter::LOAD
            .into_iter()
            .all(|filter| self.passes(filter, candidate))
    }

    fn passes(&self, filter: Filter, candidate: Candidate) -> bool {
        let Candidate {
            node,
            load,
            service_tasks,
        } = candidate;
        match filter {
            Filter::Ready => node.ready && node.availability == Availability::Active,
            // swarmkit skips this check for tasks that reserve nothing, so an overcommitted
            // node still takes them.
            Filter::Resources => {
                let wanted = self.reservations;
                wanted.is_zero() || node.resources.minus(load.reserved).covers(wanted)
            }
            Filter::Constraints => self.constraints.iter().all(|c| c.matches(node)),
            Filter::Platform => {
                self.platforms.is_empty()
                    || self.platforms.iter().any(|p| supports(p, &node.platform))
            }
            Filter::HostPorts => !self.host_ports.iter().any(|p| load.host_ports.contains(p)),
            Filter::MaxReplicas => {
                self.max_replicas_per_node == 0
                    || u64::from(service_tasks) < self.max_replicas_per_node
            }
        }
    }
}

/// Whether an image built for `wanted` runs on a node of `platform`; an empty field in
/// `wanted` matches anything, and the kernel's and Go's names of an architecture are the same.
fn supports(wanted: &Platform, platform: &Platform) -> bool {
    fn arch(name: &str) -> &str {
        match name {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }
    (wanted.arch.is_empty() || arch(&wanted.arch) == arch(&platform.arch))
        && (wanted.os.is_empty() || wanted.os == platform.os)
}

/// docker's error for tasks no node takes, from the first failing check of every node:
/// `no suitable node (<explanation>; <explanation>)`, the most frequent failure first and
/// ties in pipeline order; bare `no suitable node` when there are no nodes at all.
pub(super) fn no_suitable_node(failures: impl IntoIterator<Item = Filter>) -> String {
    let mut counts = Filter::PIPELINE.map(|filter| (filter, 0));
    for failure in failures {
        if let Some((_, count)) = counts.iter_mut().find(|(filter, _)| *filter == failure) {
            *count += 1;
        }
    }
    // A stable sort keeps pipeline order between equal counts.
    counts.sort_by(|(_, a), (_, b)| b.cmp(a));
    let explanations: Vec<String> = counts
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|&(filter, count)| filter.explain(count))
        .collect();
    if explanations.is_empty() {
        "no suitable node".to_owned()
    } else {
        format!("no suitable node ({})", explanations.join("; "))
    }
}
