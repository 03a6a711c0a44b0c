//! `service inspect --pretty`: docker's `serviceInspectPrettyTemplate`, tabs and all, for
//! the parts of a service shoal's commands set.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bollard::models::{Service, ServiceSpecUpdateConfig, ServiceUpdateStatusStateEnum};

use super::published_ports;
use super::spec::recast;
use crate::cli::duration::format_go_duration;
use crate::cli::text::{bytes_size, elapsed, human_duration};

/// The service in docker's human form as of `now`: a blank line, the fields, a blank line.
pub fn pretty(service: &Service, now: SystemTime) -> String {
    let spec = service.spec.clone().unwrap_or_default();
    let task = spec.task_template.clone().unwrap_or_default();
    let container = task.container_spec.clone().unwrap_or_default();
    let mut lines = vec![
        format!("ID:\t\t{}", service.id.as_deref().unwrap_or_default()),
        format!("Name:\t\t{}", spec.name.as_deref().unwrap_or_default()),
    ];
    let labels = spec.labels.clone().unwrap_or_default();
    if !labels.is_empty() {
        lines.push("Labels:".into());
        for (key, value) in labels.iter().collect::<BTreeMap<_, _>>() {
            lines.push(key_value(key, value));
        }
    }
    let mode = spec.mode.clone().unwrap_or_default();
    if mode.global.is_some() {
        lines.push("Service Mode:\tGlobal".into());
    } else if let Some(replicated) = &mode.replicated {
        lines.push("Service Mode:\tReplicated".into());
        if let Some(replicas) = replicated.replicas {
            lines.push(format!(" Replicas:\t{replicas}"));
        }
    } else {
        lines.push("Service Mode:".into());
    }
    push_update_status(&mut lines, service, now);
    push_placement(&mut lines, &task.placement.clone().unwrap_or_default());
    if let Some(update) = &spec.update_config {
        push_rollout(&mut lines, "UpdateConfig:", update, " Update order:      ");
    }
    // The two policies have the same fields, so one function prints both.
    let rollback = spec
        .rollback_config
        .clone()
        .map(recast::<_, ServiceSpecUpdateConfig>);
    if let Some(Ok(rollback)) = rollback {
        push_rollout(
            &mut lines,
            "RollbackConfig:",
            &rollback,
            " Rollback order:    ",
        );
    }
    lines.push("ContainerSpec:".into());
    lines.push(format!(
        " Image:\t\t{}",
        container.image.as_deref().unwrap_or_default()
    ));
    let words = |list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .map(|word| format!("{word} "))
            .collect::<String>()
    };
    if container.args.as_ref().is_some_and(|args| !args.is_empty()) {
        lines.push(format!(" Args:\t\t{}", words(&container.args)));
    }
    if container.env.as_ref().is_some_and(|env| !env.is_empty()) {
        lines.push(format!(" Env:\t\t{}", words(&container.env)));
    }
    if let Some(dir) = container.dir.as_deref().filter(|dir| !dir.is_empty()) {
        lines.push(format!(" Dir:\t\t{dir}"));
    }
    if let Some(init) = container.init {
        lines.push(format!(" Init:\t\t{init}"));
    }
    if let Some(user) = container.user.as_deref().filter(|user| !user.is_empty()) {
        lines.push(format!(" User: {user}"));
    }
    push_resources(&mut lines, service);
    let networks = task.networks.clone().unwrap_or_default();
    if !networks.is_empty() {
        let names: String = networks
            .iter()
            .map(|n| format!(" {}", n.target.as_deref().unwrap_or_default()))
            .collect();
        lines.push(format!("Networks:{names} "));
    }
    let endpoint_mode = spec.endpoint_spec.as_ref().and_then(|e| e.mode);
    let endpoint_mode = endpoint_mode.map(|m| m.to_string()).unwrap_or_default();
    lines.push(format!("Endpoint Mode:\t{endpoint_mode}"));
    push_ports(&mut lines, service);
    format!("\n{}\n\n", lines.join("\n"))
}

/// ` key=value`, or ` key` alone for an empty value.
fn key_value(key: &str, value: &str) -> String {
    if value.is_empty() {
        format!(" {key}")
    } else {
        format!(" {key}={value}")
    }
}

fn push_update_status(lines: &mut Vec<String>, service: &Service, now: SystemTime) {
    let Some(status) = &service.update_status else {
        return;
    };
    let Some(state) = status
        .state
        .filter(|s| *s != ServiceUpdateStatusStateEnum::EMPTY)
    else {
        return;
    };
    lines.push("UpdateStatus:".into());
    lines.push(format!(" State:\t\t{state}"));
    let ago = |date| format!("{} ago", human_duration(elapsed(Some(date), now)));
    if let Some(started) = &status.started_at {
        lines.push(format!(" Started:\t{}", ago(started)));
    }
    let completed = status.completed_at.as_ref();
    if let Some(completed) = completed.filter(|_| state == ServiceUpdateStatusStateEnum::COMPLETED)
    {
        lines.push(format!(" Completed:\t{}", ago(completed)));
    }
    let message = status.message.as_deref().unwrap_or_default();
    lines.push(format!(" Message:\t{message}"));
}

fn push_placement(lines: &mut Vec<String>, placement: &bollard::models::TaskSpecPlacement) {
    lines.push("Placement:".into());
    let constraints = placement.constraints.clone().unwrap_or_default();
    if !constraints.is_empty() {
        lines.push(format!(" Constraints:\t[{}]", constraints.join(" ")));
    }
    let preferences: Vec<String> = placement
        .preferences
        .iter()
        .flatten()
        .filter_map(|p| p.spread.as_ref())
        .map(|s| {
            format!(
                "spread={}",
                s.spread_descriptor.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if !preferences.is_empty() {
        lines.push(format!(" Preferences:   [{}]", preferences.join(" ")));
    }
    if let Some(max) = placement.max_replicas.filter(|&max| max > 0) {
        lines.push(format!(" Max Replicas Per Node:   {max}"));
    }
}

/// An update or rollback policy under `title`; `order` labels its last line.
fn push_rollout(
    lines: &mut Vec<String>,
    title: &str,
    config: &ServiceSpecUpdateConfig,
    order: &str,
) {
    lines.push(title.into());
    lines.push(format!(
        " Parallelism:\t{}",
        config.parallelism.unwrap_or(0)
    ));
    if let Some(delay) = config.delay.filter(|&delay| delay > 0) {
        lines.push(format!(" Delay:\t\t{}", format_go_duration(delay)));
    }
    let action = config
        .failure_action
        .map(|a| a.to_string())
        .unwrap_or_default();
    lines.push(format!(" On failure:\t{action}"));
    if let Some(monitor) = config.monitor.filter(|&monitor| monitor > 0) {
        lines.push(format!(
            " Monitoring Period: {}",
            format_go_duration(monitor)
        ));
    }
    let ratio = config.max_failure_ratio.unwrap_or(0.0);
    lines.push(format!(" Max failure ratio: {ratio}"));
    let order_name = config.order.map(|o| o.to_string()).unwrap_or_default();
    lines.push(format!("{order}{order_name}"));
}

/// The reservations and limits of a task, in CPUs and binary units; the process limit shows
/// even without the rest, as docker's template has it.
fn push_resources(lines: &mut Vec<String>, service: &Service) {
    let task = service.spec.as_ref().and_then(|s| s.task_template.as_ref());
    let resources = task.and_then(|t| t.resources.as_ref());
    let limits = resources.and_then(|r| r.limits.clone()).unwrap_or_default();
    if let Some(resources) = resources {
        lines.push("Resources:".into());
        let reserved = resources.reservations.clone().unwrap_or_default();
        push_amounts(
            lines,
            " Reservations:",
            reserved.nano_cpus,
            reserved.memory_bytes,
            false,
        );
        let pids = limits.pids.unwrap_or(0) > 0;
        push_amounts(
            lines,
            " Limits:",
            limits.nano_cpus,
            limits.memory_bytes,
            pids,
        );
    }
    if let Some(pids) = limits.pids.filter(|&pids| pids > 0) {
        lines.push(format!("  PIDs:\t\t{pids}"));
    }
}

/// A CPU and memory amount under `title`, all left out when neither is set (and `shown`
/// does not keep the title).
fn push_amounts(
    lines: &mut Vec<String>,
    title: &str,
    nano_cpus: Option<i64>,
    memory: Option<i64>,
    shown: bool,
) {
    let (nano_cpus, memory) = (nano_cpus.unwrap_or(0), memory.unwrap_or(0));
    if nano_cpus <= 0 && memory <= 0 && !shown {
        return;
    }
    lines.push(title.into());
    if nano_cpus > 0 {
        // Display only: billionths of a CPU are exact in an f64 far beyond any real count.
        #[allow(clippy::cast_precision_loss)]
        let cpus = nano_cpus as f64 / 1e9;
        lines.push(format!("  CPU:\t\t{cpus}"));
    }
    if memory > 0 {
        lines.push(format!("  Memory:\t{}", bytes_size(memory)));
    }
}

/// The published ports, one block each; docker's template leaves a space after the last.
fn push_ports(lines: &mut Vec<String>, service: &Service) {
    let ports = published_ports(service);
    if ports.is_empty() {
        return;
    }
    lines.push("Ports:".into());
    for port in &ports {
        let text = |value: Option<String>| value.unwrap_or_default();
        lines.push(format!(
            " PublishedPort = {}",
            port.published_port.unwrap_or(0)
        ));
        lines.push(format!(
            "  Protocol = {}",
            text(port.protocol.map(|p| p.to_string()))
        ));
        lines.push(format!("  TargetPort = {}", port.target_port.unwrap_or(0)));
        lines.push(format!(
            "  PublishMode = {}",
            text(port.publish_mode.map(|m| m.to_string()))
        ));
    }
    if let Some(last) = lines.last_mut() {
        last.push(' ');
    }
}

#[cfg(test)]
#[path = "pretty_tests.rs"]
mod tests;
