//! Runs this node's assigned tasks through the executor and says how they do.
//!
//! The worker acts on the whole set of assignments each time it changes: it starts tasks that
//! should run, stops those that should not, and forgets (removes) those the store forgot. It
//! remembers the last status it reported for each task so that a new session can report them
//! all again: the store only takes changes that move a task forward, so repeats are harmless
//! and nothing said into a connection that broke is lost.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bollard::models::{ContainerStatus, TaskState, TaskStatus};
use tokio::sync::mpsc;

use super::NodeNetwork;
use super::host_ports::Published;
use crate::exec::{Executor, ExitStatus, TaskRunState, TaskStart};
use crate::rpc::proto::{Assignment, StatusReport};
use crate::store::objects::timestamp;

/// Docker's default stop grace period.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// This node's tasks and the executor that runs them.
pub struct Worker {
    executor: Arc<dyn Executor>,
    network: Arc<NodeNetwork>,
    reports: mpsc::UnboundedSender<StatusReport>,
    tasks: Mutex<HashMap<String, Local>>,
}

/// What the worker knows of one task.
struct Local {
    /// The last status reported.
    status: TaskStatus,
    /// Asked to stop: its exit is a shutdown, not a failure.
    stopping: bool,
}

impl Worker {
    /// A worker running tasks with `executor`, attached to their overlays through `network`;
    /// it sends status reports into `reports`.
    pub fn new(
        executor: Arc<dyn Executor>,
        network: Arc<NodeNetwork>,
        reports: mpsc::UnboundedSender<StatusReport>,
    ) -> Arc<Worker> {
        Arc::new(Worker {
            executor,
            network,
            reports,
            tasks: Mutex::new(HashMap::new()),
        })
    }

    /// The executor that runs this node's tasks.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every task's last reported status, for a new session to repeat.
    pub fn statuses(&self) -> Vec<StatusReport> {
        self.lock()
            .iter()
            .map(|(id, local)| StatusReport {
                task_id: id.clone(),
                status: local.status.clone(),
            })
            .collect()
    }

    fn report(&self, task_id: &str, status: TaskStatus) {
        if let Some(local) = self.lock().get_mut(task_id) {
            local.status = status.clone();
        }
        let _ = self.reports.send(StatusReport {
            task_id: task_id.to_string(),
            status,
        });
    }

    /// Makes the node's tasks match `assignments`.
    pub async fn apply(self: &Arc<Self>, assignments: Vec<Assignment>) {
        let held = self.executor.list().await.unwrap_or_else(|e| {
            tracing::warn!("cannot list the executor's tasks: {e}");
            Vec::new()
        });
        let assigned: std::collections::HashSet<&str> =
            assignments.iter().map(|a| a.task.id.as_str()).collect();
        for id in held.iter().filter(|id| !assigned.contains(id.as_str())) {
            // The store forgot it (history trimmed, service removed): so do we.
            self.lock().remove(id);
            if let Err(e) = self.executor.remove(id).await {
                tracing::warn!(task = %id, "cannot remove a task nobody wants: {e}");
            }
        }
        for assignment in &assignments {
            let task = &assignment.task;
            let known = self.lock().contains_key(&task.id);
            if task.desired_state == TaskState::RUNNING && !known && !task.is_terminal() {
                self.lock().insert(
                    task.id.clone(),
                    Local {
                        status: task.status.clone(),
                        stopping: false,
                    },
                );
                let worker = self.clone();
                let assignment = assignment.clone();
                let adopt = held.contains(&task.id);
                tokio::spawn(async move { worker.run(assignment, adopt).await });
            } else if task.desired_state != TaskState::RUNNING && !task.is_terminal() {
                self.stop(assignment);
            }
        }
    }

    /// Starts (or, after a restart, adopts) a task, then reports how it ends.
    async fn run(self: Arc<Self>, assignment: Assignment, adopt: bool) {
        let task = &assignment.task;
        if !adopt {
            self.report(
                &task.id,
                status(TaskState::PREPARING, "preparing", None, None),
            );
            if let Err(err) = self.start(&assignment).await {
                return self.report(
                    &task.id,
                    status(TaskState::REJECTED, "preparing", Some(err), None),
                );
            }
        }
        let pid = match self.executor.status(&task.id).await {
            TaskRunState::Running { pid } => Some(pid),
            _ => None,
        };
        // Bound before the task is reported running, so a running task answers on them.
        let host_ports =
            Published::start(self.executor.as_ref(), &task.id, &assignment.host_ports).await;
        let mut running = status(TaskState::RUNNING, &host_ports.message(), None, None);
        running.port_status = host_ports.port_status();
        // An adopted task is reported again only if its ports came out otherwise this time.
        let same_ports = running.port_status == task.status.port_status
            && running.message == task.status.message;
        if task.state() != TaskState::RUNNING || !adopt || !same_ports {
            running.container_status = Some(ContainerStatus {
                container_id: Some(self.executor.container_id(&task.id).await),
                pid: pid.map(i64::from),
                exit_code: None,
            });
            self.report(&task.id, running);
        }
        let ended = self.executor.wait(&task.id).await;
        host_ports.close().await;
        let stopping = self.lock().get(&task.id).is_some_and(|l| l.stopping);
        self.report(&task.id, final_status(ended, stopping));
    }

    /// Starts a task on its networks: in a namespace prepared for it or, where the executor's
    /// engine makes the namespace, in the task's own once it runs. Says why it could not.
    async fn start(&self, assignment: &Assignment) -> Result<(), String> {
        let task = &assignment.task;
        let spec = task.spec.container_spec.clone().unwrap_or_default();
        let on_overlays = self.network.carries(task);
        // The embedded DNS is reachable only from a namespace on the overlays.
        let nameservers = if on_overlays {
            nameservers(assignment)
        } else {
            Vec::new()
        };
        let after_start = self.executor.attaches_after_start();
        let netns = if after_start {
            None
        } else {
            let prepared = self.network.prepare(task, &assignment.networks).await;
            prepared.map_err(|e| format!("{e:#}"))?
        };
        let name = format!("{}.{}", task.name(&assignment.service_name), task.id);
        let resources = task.spec.resources.as_ref();
        let start = TaskStart {
            task_id: &task.id,
            name: &name,
            service_id: &task.service_id,
            service_name: &assignment.service_name,
            spec: &spec,
            limits: resources.and_then(|r| r.limits.as_ref()),
            default_hostname: task.id.get(..12).unwrap_or(&task.id),
            netns: netns.as_deref(),
            nameservers: &nameservers,
        };
        let started = self.executor.start(&start).await;
        if let Some(netns) = &netns {
            self.network.started(netns);
        }
        started.map_err(|e| e.to_string())?;
        if !(after_start && on_overlays) {
            return Ok(());
        }
        // A task that has already ended has no namespace left: `wait` says how it ended.
        let Some(netns) = self.executor.netns_path(&task.id).await else {
            return Ok(());
        };
        let attached = self
            .network
            .attach(task, &assignment.networks, &netns)
            .await;
        if let Err(e) = attached {
            if let Err(removing) = self.executor.remove(&task.id).await {
                tracing::warn!(task = %task.id, "cannot remove a task left off its networks: {removing}");
            }
            return Err(format!("{e:#}"));
        }
        Ok(())
    }

    /// Stops a task the orchestrator no longer wants running.
    fn stop(self: &Arc<Self>, assignment: &Assignment) {
        let task = &assignment.task;
        {
            let mut tasks = self.lock();
            let local = tasks.entry(task.id.clone()).or_insert_with(|| Local {
                status: task.status.clone(),
                stopping: false,
            });
            if local.stopping {
                return;
            }
            local.stopping = true;
        }
        let grace = task
            .spec
            .container_spec
            .as_ref()
            .and_then(|c| c.stop_grace_period);
        let grace = grace.map_or(DEFAULT_GRACE, |ns| Duration::from_nanos(ns.max(0) as u64));
        let worker = self.clone();
        let task_id = task.id.clone();
        tokio::spawn(async move {
            match worker.executor.stop(&task_id, grace).await {
                // Whoever waits on the task (if this daemon started it) may report the same;
                // the store keeps the first report of an end and ignores the rest.
                Ok(()) => worker.report(
                    &task_id,
                    status(TaskState::SHUTDOWN, "shutdown", None, None),
                ),
                Err(e) => tracing::warn!(task = %task_id, "cannot stop task: {e}"),
            }
        });
    }
}

/// The DNS servers of a task: the embedded DNS on the gateway of each network its spec attaches
/// it to, in the order of its interfaces. The ingress network, which the task is on only to be
/// reached through published ports, has no DNS (and is in no spec).
fn nameservers(assignment: &Assignment) -> Vec<IpAddr> {
    let task = &assignment.task;
    let in_spec = |id: &str| {
        let attached = task.spec.networks.iter().flatten();
        attached
            .into_iter()
            .any(|a| a.target.as_deref() == Some(id))
    };
    task.networks
        .iter()
        .filter(|attachment| in_spec(&attachment.network_id))
        .filter_map(|attachment| {
            let network = assignment
                .networks
                .iter()
                .find(|n| n.id == attachment.network_id);
            network.map(|n| IpAddr::V4(n.gateway))
        })
        .collect()
}

fn status(
    state: TaskState,
    message: &str,
    err: Option<String>,
    exit_code: Option<i64>,
) -> TaskStatus {
    TaskStatus {
        timestamp: Some(timestamp(SystemTime::now())),
        state: Some(state),
        message: Some(message.to_string()),
        err,
        container_status: exit_code.map(|code| ContainerStatus {
            exit_code: Some(code),
            ..Default::default()
        }),
        port_status: None,
    }
}

/// How a task that exited is reported: shut down if asked to stop, complete on exit 0, failed
/// otherwise with docker's wording.
fn final_status(ended: Result<ExitStatus, crate::exec::ExecError>, stopping: bool) -> TaskStatus {
    match ended {
        Ok(exit) if stopping => status(
            TaskState::SHUTDOWN,
            "shutdown",
            None,
            Some(i64::from(exit.exit_code)),
        ),
        Ok(exit) if exit.success() => status(TaskState::COMPLETE, "finished", None, Some(0)),
        Ok(exit) => {
            let err = exit
                .error
                .clone()
                .unwrap_or_else(|| format!("task: non-zero exit ({})", exit.exit_code));
            status(
                TaskState::FAILED,
                "failed",
                Some(err),
                Some(i64::from(exit.exit_code)),
            )
        }
        Err(e) => status(TaskState::FAILED, "failed", Some(e.to_string()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::routes::NetworkInfo;
    use crate::store::Task;
    use bollard::models::{NetworkAttachmentConfig, TaskSpec};

    fn network(id: &str, third: u8) -> NetworkInfo {
        NetworkInfo {
            id: id.into(),
            name: id.into(),
            vni: 4096 + u32::from(third),
            subnet: format!("10.0.{third}.0/24").parse().unwrap(),
            gateway: format!("10.0.{third}.1").parse().unwrap(),
            mtu: 1450,
        }
    }

    #[test]
    fn the_tasks_networks_give_its_nameservers_ingress_excepted() {
        let attach = |id: &str| NetworkAttachmentConfig {
            target: Some(id.into()),
            ..Default::default()
        };
        // As the allocator attaches them: ingress first, then the spec's, in its order.
        let on = [
            ("ingress", "10.0.0.5/24"),
            ("back", "10.0.2.5/24"),
            ("front", "10.0.1.5/24"),
        ];
        let task = Task {
            spec: TaskSpec {
                networks: Some(vec![attach("back"), attach("front")]),
                ..Default::default()
            },
            ..crate::store::state::test_task("t1", "s1", &on)
        };
        let assignment = Assignment {
            task,
            service_name: "web".into(),
            networks: vec![
                network("front", 1),
                network("ingress", 0),
                network("back", 2),
            ],
            host_ports: Vec::new(),
        };
        let gateways: Vec<IpAddr> = vec!["10.0.2.1".parse().unwrap(), "10.0.1.1".parse().unwrap()];
        assert_eq!(nameservers(&assignment), gateways);

        let mut published_only = assignment;
        published_only.task.spec.networks = None;
        assert!(nameservers(&published_only).is_empty());
    }
}
