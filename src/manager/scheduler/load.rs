//! What already runs on each node, kept up to date as tasks are placed.

use std::collections::{HashMap, HashSet};

use super::model::{HostPort, Resources};

/// The load on one node.
#[derive(Debug, Default)]
pub(super) struct NodeLoad {
    /// Tasks per service. While a group is being placed, its service's count lives in the
    /// group's own vector (see `Scheduler::schedule`) and is written back here afterwards.
    tasks_by_service: HashMap<String, u32>,
    /// Tasks of every service.
    pub(super) total_tasks: u32,
    /// The sum of the tasks' reservations.
    pub(super) reserved: Resources,
    /// Host-mode ports the tasks publish.
    pub(super) host_ports: HashSet<HostPort>,
}

impl NodeLoad {
    /// Counts a task that already runs here.
    pub(super) fn add_existing(
        &mut self,
        service_id: String,
        reservations: Resources,
        host_ports: &[HostPort],
    ) {
        *self.tasks_by_service.entry(service_id).or_default() += 1;
        self.add(reservations, host_ports);
    }

    /// Counts a task placed here, except in its service's count, which the caller keeps.
    pub(super) fn add(&mut self, reservations: Resources, host_ports: &[HostPort]) {
        self.total_tasks += 1;
        self.reserved = self.reserved.plus(reservations);
        self.host_ports.extend(host_ports);
    }

    /// How many tasks of `service_id` run here.
    pub(super) fn tasks_of(&self, service_id: &str) -> u32 {
        self.tasks_by_service.get(service_id).copied().unwrap_or(0)
    }

    /// Records that `count` tasks of `service_id` now run here.
    pub(super) fn set_tasks_of(&mut self, service_id: &str, count: u32) {
        match self.tasks_by_service.get_mut(service_id) {
            Some(known) => *known = count,
            None if count > 0 => {
                self.tasks_by_service.insert(service_id.to_owned(), count);
            }
            None => {}
        }
    }
}
