//! Following a service until it converges, drawn as docker draws it: an overall count, a
//! line per task slot (per node for a global service), then a wait to verify that the tasks
//! stay up. On a terminal the lines are redrawn in place, with docker's bars when the
//! terminal is wide enough; elsewhere each line is printed again only when it changes.
//!
//! Like docker's, the watch has no time limit: a task that keeps failing keeps it waiting.
//! Ctrl-C stops the watch (the change carries on in the swarm) and `-d` skips it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::{
    NodeState, ServiceSpec, ServiceUpdateStatusStateEnum as UpdateState, Task, TaskState,
};
use bollard::query_parameters::{InspectServiceOptions, ListNodesOptions, ListTasksOptions};

use super::screen::{Screen, terminal_width};
use crate::cli::text::short_id;

/// How often docker polls the service and its tasks.
const POLL: Duration = Duration::from_millis(200);
/// How long converged tasks must stay up when the update policy does not say.
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
/// Above this many tasks docker shows only the overall count.
const MAX_LINES: u64 = 20;
/// The rank of `running`, the last state on the way up: higher ranks are final.
const RUNNING: u8 = 9;
/// Docker pads task states to the longest one it shows (`allocated`, `preparing`).
const STATE_WIDTH: usize = 9;
/// Task errors are cut to this many bytes, so they fit narrow terminals.
const ERROR_WIDTH: usize = 75;

/// `-d` and `-q` of the commands that wait for their change to converge.
#[derive(Debug, clap::Args)]
pub struct WaitFlags {
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,
}

impl WaitFlags {
    /// Waits for `service` to converge, unless detached.
    pub async fn wait(&self, docker: &Docker, service: &str) -> Result<()> {
        if self.detach {
            return Ok(());
        }
        converge(docker, service, self.quiet).await
    }
}

/// Follows `service` (as named to the daemon) until it converges, drawing the progress on
/// stdout unless `quiet`.
pub async fn converge(docker: &Docker, service: &str, quiet: bool) -> Result<()> {
    if quiet {
        watch(docker, service, &mut Screen::new(io::sink(), None)).await
    } else {
        let width = terminal_width();
        watch(docker, service, &mut Screen::new(io::stdout(), width)).await
    }
}

/// Docker's `ServiceProgress` loop.
async fn watch<W: Write>(docker: &Docker, service: &str, screen: &mut Screen<W>) -> Result<()> {
    let mut tracker = Tracker::default();
    let mut converged = false;
    let mut converged_at: Option<Instant> = None;
    let mut rolling_back = false;
    let mut rolled_back: Option<String> = None;
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let current = docker
            .inspect_service(service, None::<InspectServiceOptions>)
            .await?;
        let spec = current.spec.unwrap_or_default();
        let monitor = spec.update_config.as_ref().and_then(|c| c.monitor);
        let monitor = match monitor.and_then(|nanos| u64::try_from(nanos).ok()) {
            Some(nanos) if nanos > 0 => Duration::from_nanos(nanos),
            _ => DEFAULT_MONITOR,
        };
        if let Some(status) = &current.update_status {
            let message = status.message.clone().unwrap_or_default();
            match status.state {
                Some(UpdateState::UPDATING) => rolling_back = false,
                // The update was over before this watch saw the tasks converge.
                Some(UpdateState::COMPLETED) if !converged => return Ok(()),
                Some(UpdateState::PAUSED) => bail!("service update paused: {message}"),
                Some(UpdateState::ROLLBACK_STARTED) => {
                    if !rolling_back && !message.is_empty() {
                        screen.progress("rollback", &message, None)?;
                    }
                    rolling_back = true;
                }
                Some(UpdateState::ROLLBACK_PAUSED) => {
                    bail!("service rollback paused: {message}")
                }
                Some(UpdateState::ROLLBACK_COMPLETED) => {
                    if !converged {
                        rolled_back = Some(message);
                    }
                    rolling_back = true;
                }
                _ => {}
            }
        }
        if converged && converged_at.is_some_and(|at| at.elapsed() >= monitor) {
            screen.progress("verify", &format!("Service {service} converged"), None)?;
            if let Some(message) = rolled_back {
                screen.message("rollback", &message)?;
            }
            return Ok(());
        }
        let filters = HashMap::from([
            ("service".to_string(), vec![current.id.unwrap_or_default()]),
            ("_up-to-date".to_string(), vec!["true".to_string()]),
        ]);
        let options = ListTasksOptions {
            filters: Some(filters),
        };
        let tasks = docker.list_tasks(Some(options)).await?;
        let active = active_nodes(docker).await?;
        converged = tracker.update(&spec, &tasks, &active, rolling_back, screen)?;
        if converged {
            let since = *converged_at.get_or_insert_with(Instant::now);
            if let Some(wait) = monitor.checked_sub(since.elapsed()) {
                let seconds = wait.as_secs() + 1;
                let text = format!("Waiting {seconds} seconds to verify that tasks are stable...");
                screen.progress("verify", &text, None)?;
            }
        } else if converged_at.take().is_some() {
            screen.progress("verify", "Detected task failure", None)?;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = &mut interrupted => {
                if !converged {
                    screen.message("", "Operation continuing in background.")?;
                    let hint = format!("Use `shoal service ps {service}` to check progress.");
                    screen.message("", &hint)?;
                }
                return Ok(());
            }
        }
    }
}

/// The nodes not down, whose tasks count.
async fn active_nodes(docker: &Docker) -> Result<HashSet<String>> {
    let nodes = docker.list_nodes(None::<ListNodesOptions>).await?;
    let up = |state: Option<NodeState>| state != Some(NodeState::DOWN);
    Ok(nodes
        .into_iter()
        .filter(|node| up(node.status.as_ref().and_then(|s| s.state)))
        .filter_map(|node| node.id)
        .collect())
}

/// What docker's progress updaters remember between polls.
#[derive(Default)]
struct Tracker {
    initialized: bool,
    /// Whether every task ran at a poll: the lines stay as they are until one stops.
    done: bool,
    /// The line (1, 2, ...) of each replicated slot, in the order the slots were seen.
    lines: HashMap<i64, u64>,
}

impl Tracker {
    /// Draws the service's up-to-date `tasks`, telling whether they all run.
    fn update<W: Write>(
        &mut self,
        spec: &ServiceSpec,
        tasks: &[Task],
        active: &HashSet<String>,
        rolling_back: bool,
        screen: &mut Screen<W>,
    ) -> Result<bool> {
        let mode = spec.mode.as_ref();
        let replicas = mode
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas);
        if let Some(replicas) = replicas {
            let replicas = u64::try_from(replicas).unwrap_or(0);
            return Ok(self.replicated(replicas, tasks, active, rolling_back, screen)?);
        }
        if mode.is_some_and(|m| m.global.is_some()) {
            return Ok(self.global(tasks, active, rolling_back, screen)?);
        }
        bail!("unrecognized service mode")
    }

    fn replicated<W: Write>(
        &mut self,
        replicas: u64,
        tasks: &[Task],
        active: &HashSet<String>,
        rolling_back: bool,
        screen: &mut Screen<W>,
    ) -> io::Result<bool> {
        if !self.initialized {
            overall(screen, 0, replicas, rolling_back)?;
            if replicas <= MAX_LINES {
                for line in 1..=replicas {
                    screen.progress(&format!("{line}/{replicas}"), " ", None)?;
                }
            }
            self.initialized = true;
        }
        let slots = favoured(tasks, Some(active), |task| task.slot.unwrap_or(0));
        self.recheck(&slots);
        let mut running = 0;
        for (slot, task) in &slots {
            let next = self.lines.len() as u64 + 1;
            let line = *self.lines.entry(*slot).or_insert(next);
            running += u64::from(runs(task));
            if !self.done && replicas <= MAX_LINES && line <= replicas {
                task_progress(screen, &format!("{line}/{replicas}"), task)?;
            }
        }
        self.finish(screen, running, replicas, rolling_back)
    }

    fn global<W: Write>(
        &mut self,
        tasks: &[Task],
        active: &HashSet<String>,
        rolling_back: bool,
        screen: &mut Screen<W>,
    ) -> io::Result<bool> {
        let nodes = favoured(tasks, None, |task| task.node_id.clone().unwrap_or_default());
        // The orchestrator creates a task for every eligible node at once, so the tasks
        // tell how many nodes the service runs on.
        let count = nodes.len() as u64;
        if !self.initialized {
            if count == 0 {
                screen.progress("overall progress", "waiting for new tasks", None)?;
                return Ok(false);
            }
            overall(screen, 0, count, rolling_back)?;
            self.initialized = true;
        }
        self.recheck(&nodes);
        let mut running = 0;
        for (node, task) in nodes.iter().filter(|(node, _)| active.contains(*node)) {
            running += u64::from(runs(task));
            if !self.done && count <= MAX_LINES {
                task_progress(screen, short_id(node), task)?;
            }
        }
        self.finish(screen, running, count, rolling_back)
    }

    /// Takes back `done` when a task shown stopped running.
    fn recheck<K>(&mut self, shown: &BTreeMap<K, &Task>) {
        if self.done
            && shown
                .values()
                .any(|task| state(task) != Some(TaskState::RUNNING))
        {
            self.done = false;
        }
    }

    /// Draws the overall count until it is complete; tells whether it is.
    fn finish<W: Write>(
        &mut self,
        screen: &mut Screen<W>,
        running: u64,
        total: u64,
        rolling_back: bool,
    ) -> io::Result<bool> {
        if !self.done {
            overall(screen, running, total, rolling_back)?;
            self.done = running == total;
        }
        Ok(running == total)
    }
}

/// The task shown for each key (slot or node): the one with the lowest desired state, then
/// the lowest current state, as restarts and start-first updates give a key two tasks.
/// Tasks in states docker does not rank are left out, and with `active`, so are tasks on
/// nodes that are down.
fn favoured<'a, K: Ord>(
    tasks: &'a [Task],
    active: Option<&HashSet<String>>,
    key: impl Fn(&Task) -> K,
) -> BTreeMap<K, &'a Task> {
    let mut shown: BTreeMap<K, &Task> = BTreeMap::new();
    for task in tasks {
        let (Some(desired), Some(current)) = (rank(task.desired_state), rank(state(task))) else {
            continue;
        };
        let key = key(task);
        if let Some(existing) = shown.get(&key) {
            let existing = (rank(existing.desired_state), rank(state(existing)));
            if existing <= (Some(desired), Some(current)) {
                continue;
            }
        }
        let node = task.node_id.as_deref().filter(|node| !node.is_empty());
        if let (Some(active), Some(node)) = (active, node) {
            if !active.contains(node) {
                continue;
            }
        }
        shown.insert(key, task);
    }
    shown
}

/// Draws one task's line: its error, or its state while on the way up.
fn task_progress<W: Write>(screen: &mut Screen<W>, id: &str, task: &Task) -> io::Result<()> {
    let error = task.status.as_ref().and_then(|s| s.err.as_deref());
    if let Some(error) = error.filter(|e| !e.is_empty()) {
        return screen.progress(id, &truncated_error(error), None);
    }
    let state = state(task);
    if !is_final(task.desired_state) && !is_final(state) {
        let name = state.map(|s| s.to_string()).unwrap_or_default();
        screen.progress(id, &format!("{name:<STATE_WIDTH$}"), rank(state))?;
    }
    Ok(())
}

/// Draws the overall count.
fn overall<W: Write>(
    screen: &mut Screen<W>,
    running: u64,
    total: u64,
    rolling_back: bool,
) -> io::Result<()> {
    let text = if rolling_back {
        format!("rolling back update: {running} out of {total} tasks")
    } else {
        format!("{running} out of {total} tasks")
    };
    screen.progress("overall progress", &text, None)
}

/// A task error on one line, cut to [`ERROR_WIDTH`] bytes with an ellipsis.
fn truncated_error(error: &str) -> String {
    let error = error.replace('\n', " ");
    if error.len() <= ERROR_WIDTH {
        return error;
    }
    let mut end = ERROR_WIDTH - 1;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &error[..end])
}

/// Whether a task runs, and is meant to.
fn runs(task: &Task) -> bool {
    !is_final(task.desired_state) && state(task) == Some(TaskState::RUNNING)
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|status| status.state)
}

/// Docker's order of task states; `remove` and `orphaned` have no rank.
fn rank(state: Option<TaskState>) -> Option<u8> {
    use TaskState as S;
    Some(match state? {
        S::NEW => 1,
        S::ALLOCATED => 2,
        S::PENDING => 3,
        S::ASSIGNED => 4,
        S::ACCEPTED => 5,
        S::PREPARING => 6,
        S::READY => 7,
        S::STARTING => 8,
        S::RUNNING => RUNNING,
        S::COMPLETE => 10,
        S::SHUTDOWN => 11,
        S::FAILED => 12,
        S::REJECTED => 13,
        S::REMOVE | S::ORPHANED => return None,
    })
}

/// Whether a state comes after running: the task is done, one way or another.
fn is_final(state: Option<TaskState>) -> bool {
    rank(state).is_some_and(|rank| rank > RUNNING)
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
