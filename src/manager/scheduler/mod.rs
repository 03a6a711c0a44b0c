//! The task scheduler: decides which node each pending task runs on, the way swarmkit's
//! scheduler does, in O(log nodes) per task.
//!
//! It is pure: the caller converts store objects into [`NodeInfo`]s, [`ExistingTask`]s and
//! [`TaskGroup`]s and writes the [`Placement`]s and [`Unplaced`] reasons back. A [`Scheduler`]
//! is one scheduling pass over one snapshot of the cluster: groups are placed one after the
//! other, and each placement weighs on the groups after it.
//!
//! For each group, every node goes once through swarmkit's filters (`filter.rs`): ready and
//! active, resources, constraints, platform, host-mode ports, max replicas per node. The
//! nodes that pass are spread over (`spread.rs`): each task goes to the node with the
//! fewest tasks of its service, then the fewest tasks in all, then the smallest ID, within the
//! branch of the placement preferences that has the fewest tasks of the service. Placing a
//! task only adds load, so only the node that took it is checked again.
//!
//! Where swarmkit leaves a choice to chance or to approximation, this scheduler is exact and
//! deterministic: swarmkit fills a sorted snapshot of the nodes round-robin and picks between
//! equal branches in map order, while here every task goes to the least loaded node at that
//! moment, ties broken as described in `spread.rs`. swarmkit's demotion of nodes where the
//! service failed five times in five minutes is not modelled.

#![warn(missing_docs)]

mod constraint;
mod filter;
mod load;
mod model;
mod preference;
mod spread;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

pub use constraint::Constraint;
pub use model::{
    Availability, ExistingTask, GroupSchedule, HostPort, NodeInfo, Placement, PlacementError,
    Platform, Protocol, Resources, Role, TaskGroup, Unplaced,
};

use filter::{Candidate, Requirements};
use load::NodeLoad;
use spread::SpreadTree;

/// Checks a service's constraints and placement preferences as the scheduler will read them,
/// so that a service that could never be placed can be refused when it is created.
pub fn validate_placement(
    constraints: &[String],
    preferences: &[String],
) -> Result<(), PlacementError> {
    Constraint::parse_all(constraints)?;
    preference::spread_levels(preferences)?;
    Ok(())
}

/// One scheduling pass over a snapshot of the cluster.
pub struct Scheduler {
    /// The nodes, sorted by ID so that index order breaks ties by ID.
    nodes: Vec<NodeInfo>,
    /// The nodes' IDs, shared by the placements.
    ids: Vec<Arc<str>>,
    /// What runs on each node, by node index.
    loads: Vec<NodeLoad>,
}

impl Scheduler {
    /// Takes the cluster's nodes and the tasks already assigned to them (tasks that are not
    /// yet terminal). Of nodes sharing an ID only one is kept; tasks on unknown nodes are
    /// ignored.
    pub fn new(
        mut nodes: Vec<NodeInfo>,
        existing: impl IntoIterator<Item = ExistingTask>,
    ) -> Scheduler {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes.dedup_by(|a, b| a.id == b.id);
        let ids: Vec<Arc<str>> = nodes
            .iter()
            .map(|node| Arc::from(node.id.as_str()))
            .collect();
        let mut loads: Vec<NodeLoad> = nodes.iter().map(|_| NodeLoad::default()).collect();
        let index: HashMap<&str, usize> =
            ids.iter().enumerate().map(|(i, id)| (&**id, i)).collect();
        for task in existing {
            if let Some(&at) = index.get(task.node_id.as_str()) {
                loads[at].add_existing(task.service_id, task.reservations, &task.host_ports);
            }
        }
        Scheduler { nodes, ids, loads }
    }

    /// Places the group's tasks, each on the best node for it at that moment, and leaves
    /// those no node can take unplaced with docker's `no suitable node (...)` reason. An
    /// invalid constraint or preference refuses the whole group.
    pub fn schedule(&mut self, mut group: TaskGroup) -> Result<GroupSchedule, PlacementError> {
        let task_ids = std::mem::take(&mut group.task_ids);
        let requirements = Requirements::of(&group)?;
        let levels = preference::spread_levels(&group.preferences)?;

        // The service's counts live here while the group is placed, to spare a map lookup
        // per placement.
        let mut service_tasks: Vec<u32> = self
            .loads
            .iter()
            .map(|load| load.tasks_of(&group.service_id))
            .collect();
        let mut tree = SpreadTree::new(&levels, &self.nodes, &service_tasks, |at| {
            let candidate = self.candidate(at, &service_tasks);
            let fits = requirements.first_failure(candidate).is_none();
            fits.then(|| candidate.rank())
        });

        let mut task_ids = task_ids.into_iter();
        let mut placements = Vec::with_capacity(task_ids.len());
        while let Some(at) = tree.best_node() {
            let Some(task_id) = task_ids.next() else {
                break;
            };
            self.loads[at].add(group.reservations, &group.host_ports);
            service_tasks[at] += 1;
            let placed_on = self.candidate(at, &service_tasks);
            tree.placed(requirements.still_fits(placed_on).then(|| placed_on.rank()));
            placements.push(Placement {
                task_id,
                node_id: self.ids[at].clone(),
            });
        }

        for (load, &count) in self.loads.iter_mut().zip(&service_tasks) {
            load.set_tasks_of(&group.service_id, count);
        }
        let unplaced = self.unplaced(task_ids, &requirements, &service_tasks);
        Ok(GroupSchedule {
            placements,
            unplaced,
        })
    }

    /// The tasks left over, with the reason no node takes them now.
    fn unplaced(
        &self,
        task_ids: impl ExactSizeIterator<Item = String>,
        requirements: &Requirements,
        service_tasks: &[u32],
    ) -> Vec<Unplaced> {
        if task_ids.len() == 0 {
            return Vec::new();
        }
        let failures = (0..self.nodes.len())
            .filter_map(|at| requirements.first_failure(self.candidate(at, service_tasks)));
        let reason = filter::no_suitable_node(failures);
        task_ids
            .map(|task_id| Unplaced {
                task_id,
                reason: reason.clone(),
            })
            .collect()
    }

    /// Node `at` as the filters see it, given the group's service counts.
    fn candidate(&self, at: usize, service_tasks: &[u32]) -> Candidate<'_> {
        Candidate {
            node: &self.nodes[at],
            load: &self.loads[at],
            service_tasks: service_tasks[at],
        }
    }
}
