use serde_json::json;

use super::*;

const WEB: &str = "7i3pk3g4p8e756gxsuz5mweal";
const NODE: &str = "45ernil34fihpmu843pe37dvg";

fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-11-25T02:10:00Z").unwrap()
}

/// A task of the web service, created and last changed at `at` (seconds past 02:00).
fn task(id: &str, slot: i64, desired: &str, state: &str, at: u32) -> Task {
    let time = format!("2026-11-25T02:{:02}:{:02}.5Z", at / 60, at % 60);
    serde_json::from_value(json!({
        "ID": id,
        "CreatedAt": time,
        "ServiceID": WEB,
        "Slot": slot,
        "NodeID": NODE,
        "DesiredState": desired,
        "Status": {"Timestamp": time, "State": state},
        "Spec": {"ContainerSpec": {"Image": "busybox:1@sha256:0123"}}
    }))
    .unwrap()
}

fn services() -> HashMap<String, String> {
    HashMap::from([(WEB.to_string(), "web".to_string())])
}

fn rows(tasks: &[Task], trunc: bool) -> Vec<TaskRow> {
    named(tasks, &services(), now())
        .into_iter()
        .map(|(name, task)| TaskRow::new(name, task, "h1", now(), trunc))
        .collect()
}

#[test]
fn tasks_sort_by_slot_then_newest_first() {
    let tasks = [
        task("old10", 10, "shutdown", "shutdown", 10),
        task("new2", 2, "running", "running", 300),
        task("new10", 10, "running", "running", 400),
        task("old2", 2, "shutdown", "failed", 200),
        task("older2", 2, "shutdown", "failed", 100),
    ];
    let order: Vec<(String, &str)> = named(&tasks, &services(), now())
        .into_iter()
        .map(|(name, task)| (name, task.id.as_deref().unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            ("web.2".into(), "new2"),
            ("web.2".into(), "old2"),
            ("web.2".into(), "older2"),
            ("web.10".into(), "new10"),
            ("web.10".into(), "old10"),
        ]
    );
}

#[test]
fn global_tasks_are_named_by_node_and_unknown_services_by_id() {
    let mut global = task("g", 0, "running", "running", 0);
    global.slot = None;
    let mut stray = task("s", 1, "running", "running", 0);
    stray.service_id = Some("other".into());
    let names: Vec<String> = named(&[global, stray], &services(), now())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["other.1", format!("web.{NODE}").as_str()]);
}

#[test]
fn rows_show_states_since_their_change_and_cut_errors() {
    let mut failed = task("cpxml6t83c07erdo9ghme0rlx", 1, "shutdown", "failed", 595);
    let error = "exec: \"nonexistentprog\": executable file not found in $PATH";
    failed.status.as_mut().unwrap().err = Some(error.into());
    let row = &rows(std::slice::from_ref(&failed), true)[0];
    assert_eq!(row.id, "cpxml6t83c07");
    assert_eq!(row.image, "busybox:1");
    assert_eq!(row.desired_state, "Shutdown");
    assert_eq!(row.current_state, "Failed 4 seconds ago");
    assert_eq!(row.error, "\"exec: \"nonexistentprog\": exec…\"");
    let full = &rows(&[failed], false)[0];
    assert_eq!(full.id, "cpxml6t83c07erdo9ghme0rlx");
    assert_eq!(full.image, "busybox:1@sha256:0123");
    assert_eq!(full.error, format!("\"{error}\""));
    let running = &rows(&[task("r", 1, "running", "running", 0)], true)[0];
    assert_eq!(running.current_state, "Running 9 minutes ago");
    assert_eq!(running.error, "");
    let fresh = &rows(&[task("r", 1, "running", "starting", 599)], true)[0];
    assert_eq!(fresh.current_state, "Starting less than a second ago");
    let minute = &rows(&[task("r", 1, "running", "running", 530)], true)[0];
    assert_eq!(minute.current_state, "Running about a minute ago");
}

#[test]
fn published_ports_of_a_task_are_listed() {
    let mut host = task("h", 1, "running", "running", 0);
    host.status.as_mut().unwrap().port_status = serde_json::from_value(json!({"Ports": [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"},
        {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "host"}
    ]}))
    .unwrap();
    assert_eq!(rows(&[host], true)[0].ports, "*:8080->80/tcp,*:53->53/udp");
}

#[test]
fn earlier_tasks_of_a_slot_are_indented_in_the_table() {
    let mut failed = task("cpxml6t83c07erdo9ghme0rlx", 1, "shutdown", "failed", 593);
    failed.status.as_mut().unwrap().err = Some("exit status 1".into());
    let tasks = [
        task("0ho2un4o53y4930xs7mpkeulw", 1, "running", "running", 594),
        failed,
        task("6cg63uk2dcvmxxxxxxxxxxxxx", 2, "running", "pending", 600),
    ];
    assert_eq!(
        task_table(&rows(&tasks, true)),
        "ID             NAME        IMAGE       NODE      DESIRED STATE   CURRENT STATE                    ERROR             PORTS\n\
         0ho2un4o53y4   web.1       busybox:1   h1        Running         Running 5 seconds ago                              \n\
         cpxml6t83c07    \\_ web.1   busybox:1   h1        Shutdown        Failed 6 seconds ago             \"exit status 1\"   \n\
         6cg63uk2dcvm   web.2       busybox:1   h1        Running         Pending less than a second ago                     \n"
    );
    // JSON rows carry the plain name.
    let json = json_lines(&rows(&tasks[1..2], true)).unwrap();
    assert_eq!(
        json,
        "{\"CurrentState\":\"Failed 6 seconds ago\",\"DesiredState\":\"Shutdown\",\
         \"Error\":\"\\\"exit status 1\\\"\",\"ID\":\"cpxml6t83c07\",\"Image\":\"busybox:1\",\
         \"Name\":\"web.1\",\"Node\":\"h1\",\"Ports\":\"\"}\n"
    );
}
