//! A task as a Docker container: the create request made from its spec, the labels that name
//! its node, service and task, and what the container's state says of the task.

use std::collections::HashMap;
use std::time::SystemTime;

use bollard::models::{
    ContainerCreateBody, ContainerState, ContainerStateStatusEnum, HostConfig, RestartPolicy,
    RestartPolicyNameEnum,
};

use crate::exec::{ExitStatus, TaskRunState, TaskStart};

/// The node whose agent manages the container (docker's swarm labels, so `docker ps --filter`
/// works as on a swarm node).
pub const NODE_LABEL: &str = "com.docker.swarm.node.id";
/// The task the container runs.
pub const TASK_LABEL: &str = "com.docker.swarm.task.id";
const TASK_NAME_LABEL: &str = "com.docker.swarm.task.name";
const SERVICE_LABEL: &str = "com.docker.swarm.service.id";
const SERVICE_NAME_LABEL: &str = "com.docker.swarm.service.name";

/// Docker's resolv.conf option for its embedded DNS: every name is tried as given first.
const NDOTS: &str = "ndots:0";

/// The create request for `task` on node `node_id`: network mode `none` (the agent attaches
/// the container's namespace to the overlays once it runs), no restart policy (restarting is
/// the orchestrator's decision), the spec's program, environment, mounts and limits, and labels
/// naming node, service and task.
pub fn create_body(task: &TaskStart<'_>, node_id: &str) -> ContainerCreateBody {
    let spec = task.spec;
    let mut labels = spec.labels.clone().unwrap_or_default();
    labels.extend(
        [
            (NODE_LABEL, node_id),
            (SERVICE_LABEL, task.service_id),
            (SERVICE_NAME_LABEL, task.service_name),
            (TASK_LABEL, task.task_id),
            (TASK_NAME_LABEL, task.name),
        ]
        .map(|(key, value)| (key.to_string(), value.to_string())),
    );
    let dns = spec.dns_config.as_ref();
    let nameservers = match dns.and_then(|d| d.nameservers.clone()) {
        Some(own) if !own.is_empty() => own,
        _ => task.nameservers.iter().map(ToString::to_string).collect(),
    };
    // The embedded DNS is docker's: its resolv.conf says ndots:0 (the spec may add options).
    let mut dns_options = Vec::new();
    if !task.nameservers.is_empty() {
        dns_options.push(NDOTS.to_string());
    }
    dns_options.extend(dns.and_then(|d| d.options.clone()).unwrap_or_default());
    let limits = task.limits;
    let host_config = HostConfig {
        network_mode: Some("none".into()),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        mounts: spec.mounts.clone(),
        dns: (!nameservers.is_empty()).then_some(nameservers),
        dns_options: (!dns_options.is_empty()).then_some(dns_options),
        dns_search: dns.and_then(|d| d.search.clone()),
        extra_hosts: spec.hosts.as_ref().map(|hosts| extra_hosts(hosts)),
        init: spec.init,
        readonly_rootfs: spec.read_only,
        cap_add: spec.capability_add.clone(),
        cap_drop: spec.capability_drop.clone(),
        group_add: spec.groups.clone(),
        sysctls: spec.sysctls.clone(),
        ulimits: spec.ulimits.clone(),
        oom_score_adj: spec.oom_score_adj,
        memory: limits.and_then(|l| l.memory_bytes).filter(|&m| m > 0),
        nano_cpus: limits.and_then(|l| l.nano_cpus).filter(|&n| n > 0),
        pids_limit: limits.and_then(|l| l.pids).filter(|&p| p > 0),
        ..Default::default()
    };
    ContainerCreateBody {
        image: spec.image.clone(),
        // Swarm's Command is the container's entrypoint, its Args the command.
        entrypoint: spec.command.clone().filter(|c| !c.is_empty()),
        cmd: spec.args.clone().filter(|a| !a.is_empty()),
        env: spec.env.clone(),
        working_dir: spec.dir.clone().filter(|d| !d.is_empty()),
        user: spec.user.clone().filter(|u| !u.is_empty()),
        // None: the engine names the container's host after its ID, as on a swarm node.
        hostname: spec.hostname.clone().filter(|name| !name.is_empty()),
        tty: spec.tty,
        open_stdin: spec.open_stdin,
        stop_signal: spec.stop_signal.clone().filter(|s| !s.is_empty()),
        healthcheck: spec.health_check.clone(),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Swarm's hosts entries (`IP name [alias...]`, as in /etc/hosts) as docker's extra hosts
/// (`name:IP`, one per name).
fn extra_hosts(hosts: &[String]) -> Vec<String> {
    let mut extra = Vec::new();
    for entry in hosts {
        let mut words = entry.split_whitespace();
        if let Some(ip) = words.next() {
            extra.extend(words.map(|name| format!("{name}:{ip}")));
        }
    }
    extra
}

/// A `label` filter for containers of node `node_id`, and of task `task_id` if given.
pub fn label_filter(node_id: &str, task_id: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{NODE_LABEL}={node_id}")];
    labels.extend(task_id.map(|id| format!("{TASK_LABEL}={id}")));
    HashMap::from([("label".to_string(), labels)])
}

/// What a container's state says of its task.
pub fn run_state(state: &ContainerState) -> TaskRunState {
    use ContainerStateStatusEnum as Status;
    match state.status {
        Some(Status::RUNNING | Status::PAUSED | Status::RESTARTING | Status::STOPPING) => {
            match state.pid.and_then(|pid| u32::try_from(pid).ok()) {
                Some(pid) if pid > 0 => TaskRunState::Running { pid },
                _ => TaskRunState::Starting,
            }
        }
        Some(Status::CREATED) if !has_error(state) => TaskRunState::Starting,
        Some(Status::CREATED | Status::EXITED | Status::DEAD | Status::REMOVING) => {
            TaskRunState::Exited(exit_status(state))
        }
        Some(Status::EMPTY) | None => TaskRunState::Unknown,
    }
}

fn has_error(state: &ContainerState) -> bool {
    state.error.as_deref().is_some_and(|e| !e.is_empty())
}

/// How a container that is not running ended: its exit code (docker's, 128 + the signal for a
/// killed program), and the engine's error when the program never ran.
pub fn exit_status(state: &ContainerState) -> ExitStatus {
    let finished_at = state
        .finished_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .filter(|t| *t > SystemTime::UNIX_EPOCH)
        .unwrap_or_else(SystemTime::now);
    let never_started = state.status == Some(ContainerStateStatusEnum::CREATED);
    let error = match state.error.as_deref().filter(|e| !e.is_empty()) {
        Some(error) => Some(format!("starting container failed: {error}")),
        None if never_started => Some("the container was never started".to_string()),
        None if state.oom_killed == Some(true) => Some("task: killed: out of memory".to_string()),
        None => None,
    };
    let exit_code = match state.exit_code.and_then(|c| i32::try_from(c).ok()) {
        Some(code) if code != 0 || error.is_none() => code,
        // Docker's code for a container that could not be run.
        _ => 128,
    };
    ExitStatus {
        exit_code,
        signal: None,
        finished_at,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{Limit, Mount, MountType, TaskSpecContainerSpec};

    fn spec() -> TaskSpecContainerSpec {
        TaskSpecContainerSpec {
            image: Some("shoal-busybox:latest".into()),
            command: Some(vec!["httpd".into()]),
            args: Some(vec!["-f".into(), "-p".into(), "80".into()]),
            env: Some(vec!["A=1".into()]),
            dir: Some("/www".into()),
            labels: Some(HashMap::from([
                ("tier".into(), "web".into()),
                (NODE_LABEL.into(), "forged".into()),
            ])),
            mounts: Some(vec![Mount {
                typ: Some(MountType::VOLUME),
                source: Some("data".into()),
                target: Some("/data".into()),
                ..Default::default()
            }]),
            hosts: Some(vec!["10.9.0.1 db db.local".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn the_container_runs_the_spec_with_no_network_and_no_restarts() {
        let spec = spec();
        let limits = Limit {
            memory_bytes: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids: None,
        };
        let nameservers = ["10.0.1.1".parse().unwrap()];
        let task = TaskStart {
            name: "web.1.t1",
            service_id: "s1",
            service_name: "web",
            limits: Some(&limits),
            nameservers: &nameservers,
            ..TaskStart::new("t1", &spec)
        };
        let body = create_body(&task, "n1");
        assert_eq!(body.image.as_deref(), Some("shoal-busybox:latest"));
        assert_eq!(body.entrypoint, Some(vec!["httpd".to_string()]));
        assert_eq!(body.cmd.unwrap(), ["-f", "-p", "80"]);
        assert_eq!(body.working_dir.as_deref(), Some("/www"));
        assert_eq!(
            body.hostname, None,
            "the engine's default: the container's ID"
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels[NODE_LABEL], "n1", "the node's own label wins");
        assert_eq!(labels[TASK_LABEL], "t1");
        assert_eq!(labels[TASK_NAME_LABEL], "web.1.t1");
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels["tier"], "web");
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(host.dns.unwrap(), ["10.0.1.1"]);
        assert_eq!(host.dns_options.unwrap(), [NDOTS]);
        assert_eq!(
            host.extra_hosts.unwrap(),
            ["db:10.9.0.1", "db.local:10.9.0.1"]
        );
        assert_eq!(host.mounts.unwrap()[0].source.as_deref(), Some("data"));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, None);
    }

    #[test]
    fn without_a_command_the_image_keeps_its_entrypoint() {
        let spec = TaskSpecContainerSpec {
            image: Some("busybox".into()),
            hostname: Some("named".into()),
            ..Default::default()
        };
        let body = create_body(&TaskStart::new("t1", &spec), "n1");
        assert_eq!((body.entrypoint, body.cmd), (None, None));
        assert_eq!(body.hostname.as_deref(), Some("named"));
        let host = body.host_config.unwrap();
        assert_eq!((host.dns, host.dns_options), (None, None));
    }

    fn state(status: ContainerStateStatusEnum, pid: i64, code: i64, error: &str) -> ContainerState {
        ContainerState {
            status: Some(status),
            pid: Some(pid),
            exit_code: Some(code),
            error: Some(error.into()),
            finished_at: Some("2026-12-07T10:47:12.723728492Z".into()),
            ..Default::default()
        }
    }

    #[test]
    fn container_states_map_to_task_states() {
        use ContainerStateStatusEnum as S;
        assert_eq!(
            run_state(&state(S::RUNNING, 42, 0, "")),
            TaskRunState::Running { pid: 42 }
        );
        assert_eq!(
            run_state(&state(S::CREATED, 0, 0, "")),
            TaskRunState::Starting
        );
        let TaskRunState::Exited(killed) = run_state(&state(S::EXITED, 0, 137, "")) else {
            panic!("an exited container is an exited task");
        };
        assert_eq!((killed.exit_code, killed.error), (137, None));
        assert!(killed.finished_at < SystemTime::now());
        let TaskRunState::Exited(clean) = run_state(&state(S::EXITED, 0, 0, "")) else {
            panic!("an exited container is an exited task");
        };
        assert!(clean.success());
        let missing = "exec: \"nope\": executable file not found in $PATH";
        let TaskRunState::Exited(failed) = run_state(&state(S::CREATED, 0, 127, missing)) else {
            panic!("a container that failed to start is an exited task");
        };
        assert_eq!(failed.exit_code, 127);
        assert_eq!(
            failed.error.unwrap(),
            format!("starting container failed: {missing}")
        );
    }

    #[test]
    fn a_filter_names_the_node_and_maybe_the_task() {
        let filter = label_filter("n1", Some("t1"));
        assert_eq!(
            filter["label"],
            [format!("{NODE_LABEL}=n1"), format!("{TASK_LABEL}=t1")]
        );
        assert_eq!(label_filter("n1", None)["label"].len(), 1);
    }
}
