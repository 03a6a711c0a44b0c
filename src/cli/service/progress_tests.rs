use bollard::models::{ServiceSpecMode, ServiceSpecModeReplicated, TaskStatus};

use super::*;

use TaskState::{FAILED, NEW, PENDING, REJECTED, RUNNING as UP, SHUTDOWN, STARTING};

const NODE1: &str = "a1b2c3d4e5f6g7h8i9j0k1l2m";
const NODE2: &str = "n1o2p3q4r5s6t7u8v9w0x1y2z";

fn task(slot: i64, node: &str, desired: TaskState, state: TaskState) -> Task {
    Task {
        slot: Some(slot),
        node_id: Some(node.into()),
        desired_state: Some(desired),
        status: Some(TaskStatus {
            state: Some(state),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn failed(slot: i64, error: &str) -> Task {
    let mut task = task(slot, NODE1, UP, REJECTED);
    task.status.as_mut().unwrap().err = Some(error.into());
    task
}

fn replicated(replicas: Option<i64>) -> ServiceSpec {
    ServiceSpec {
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn global() -> ServiceSpec {
    ServiceSpec {
        mode: Some(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn active(nodes: &[&str]) -> HashSet<String> {
    nodes.iter().map(ToString::to_string).collect()
}

/// A screen off a terminal.
fn plain() -> Screen<Vec<u8>> {
    Screen::new(Vec::new(), None)
}

#[test]
fn replicated_progress_prints_each_change_once_off_a_terminal() {
    let (mut tracker, mut screen, nodes) = (Tracker::default(), plain(), active(&[NODE1]));
    let spec = replicated(Some(3));
    let starting = [task(1, NODE1, UP, UP), task(2, NODE1, UP, PENDING)];
    let converged = tracker.update(&spec, &starting, &nodes, false, &mut screen);
    assert!(!converged.unwrap());
    assert_eq!(
        screen.drawn(),
        "overall progress: 0 out of 3 tasks\n1/3: running\n2/3: pending\n\
         overall progress: 1 out of 3 tasks\n"
    );
    let up = [
        task(1, NODE1, UP, UP),
        task(2, NODE1, UP, UP),
        task(3, NODE1, UP, UP),
    ];
    assert!(
        tracker
            .update(&spec, &up, &nodes, false, &mut screen)
            .unwrap()
    );
    assert_eq!(
        screen.drawn(),
        "2/3: running\n3/3: running\noverall progress: 3 out of 3 tasks\n"
    );
    // Once converged nothing is redrawn, until a task stops running.
    assert!(
        tracker
            .update(&spec, &up, &nodes, false, &mut screen)
            .unwrap()
    );
    assert_eq!(screen.drawn(), "");
    let down = [
        task(1, NODE1, UP, UP),
        task(2, NODE1, UP, UP),
        failed(3, "x"),
    ];
    assert!(
        !tracker
            .update(&spec, &down, &nodes, true, &mut screen)
            .unwrap()
    );
    assert_eq!(
        screen.drawn(),
        "3/3: x\noverall progress: rolling back update: 2 out of 3 tasks\n"
    );
}

#[test]
fn each_slot_shows_its_favoured_task_and_errors_are_cut() {
    let (mut tracker, mut screen, nodes) = (Tracker::default(), plain(), active(&[NODE1]));
    let long = format!("no suitable node ({})\nretrying", "x".repeat(80));
    let tasks = [
        // A start-first update: the new task (lower state) is shown, not the old one.
        task(1, NODE1, UP, UP),
        task(1, NODE1, UP, STARTING),
        // A restart: the replacement that is meant to run wins over the failed task.
        task(2, NODE1, SHUTDOWN, FAILED),
        task(2, NODE1, UP, NEW),
        failed(3, &long),
        // Not on an active node: not shown, so slot 4 has nothing to show.
        task(4, NODE2, UP, UP),
    ];
    let converged = tracker.update(&replicated(Some(4)), &tasks, &nodes, false, &mut screen);
    assert!(!converged.unwrap());
    let cut = format!("no suitable node ({}…", "x".repeat(56));
    assert_eq!(cut.len(), ERROR_WIDTH - 1 + "…".len());
    assert_eq!(
        screen.drawn(),
        format!(
            // The overall count did not change, so it is not printed again.
            "overall progress: 0 out of 4 tasks\n1/4: starting\n2/4: new\n3/4: {cut}\n"
        )
    );
}

#[test]
fn global_progress_counts_the_nodes_with_tasks() {
    let (mut tracker, mut screen) = (Tracker::default(), plain());
    let nodes = active(&[NODE1]);
    assert!(
        !tracker
            .update(&global(), &[], &nodes, false, &mut screen)
            .unwrap()
    );
    assert_eq!(screen.drawn(), "overall progress: waiting for new tasks\n");
    // A task on a node that is down counts towards the total but never runs.
    let tasks = [task(0, NODE1, UP, UP), task(0, NODE2, UP, UP)];
    assert!(
        !tracker
            .update(&global(), &tasks, &nodes, false, &mut screen)
            .unwrap()
    );
    assert_eq!(
        screen.drawn(),
        "overall progress: 0 out of 2 tasks\na1b2c3d4e5f6: running\n\
         overall progress: 1 out of 2 tasks\n"
    );
    let both = active(&[NODE1, NODE2]);
    assert!(
        tracker
            .update(&global(), &tasks, &both, false, &mut screen)
            .unwrap()
    );
    assert_eq!(
        screen.drawn(),
        "n1o2p3q4r5s6: running\noverall progress: 2 out of 2 tasks\n"
    );
}

#[test]
fn a_replicated_mode_without_a_count_is_refused_as_docker_refuses_it() {
    let (mut tracker, mut screen) = (Tracker::default(), plain());
    let error = tracker
        .update(&replicated(None), &[], &active(&[]), false, &mut screen)
        .unwrap_err();
    assert_eq!(error.to_string(), "unrecognized service mode");
}
