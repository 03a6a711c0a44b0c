//! `node inspect --pretty`: docker's `nodeInspectPrettyTemplate`, tabs and all.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    EngineDescriptionPlugins, ManagerStatus, Node, NodeSpecAvailabilityEnum as Availability,
    NodeStatus, ResourceObject, TlsInfo,
};

use super::text::{bytes_size, capitalize, date_text, go_time, pretty_enum};

/// The node in docker's human form; the text ends in a newline.
pub fn pretty(node: &Node) -> String {
    let spec = node.spec.clone().unwrap_or_default();
    let description = node.description.clone().unwrap_or_default();
    let engine = description.engine.unwrap_or_default();

    let mut lines = vec![format!("ID:\t\t\t{}", text(&node.id))];
    if let Some(name) = spec.name.filter(|n| !n.is_empty()) {
        lines.push(format!("Name:\t\t\t{name}"));
    }
    push_labels(&mut lines, "Labels:", spec.labels.as_ref());
    lines.push(aligned("Hostname:", &text(&description.hostname)));
    lines.push(aligned("Joined at:", &joined_at(node)));
    push_status(
        &mut lines,
        node.status.clone().unwrap_or_default(),
        spec.availability,
    );
    if let Some(manager) = &node.manager_status {
        push_manager_status(&mut lines, manager);
    }
    let platform = description.platform.unwrap_or_default();
    lines.push("Platform:".into());
    lines.push(format!(" Operating System:\t{}", text(&platform.os)));
    lines.push(format!(
        " Architecture:\t\t{}",
        text(&platform.architecture)
    ));
    push_resources(&mut lines, &description.resources.unwrap_or_default());
    push_plugins(&mut lines, &engine.plugins.unwrap_or_default());
    lines.push(format!(
        "Engine Version:\t\t{}",
        text(&engine.engine_version)
    ));
    push_labels(&mut lines, "Engine Labels:", engine.labels.as_ref());
    if let Some(tls) = description.tls_info {
        push_tls(&mut lines, &tls);
    }
    lines.join("\n") + "\n"
}

fn push_status(lines: &mut Vec<String>, status: NodeStatus, availability: Option<Availability>) {
    lines.push("Status:".into());
    lines.push(format!(" State:\t\t\t{}", pretty_enum(status.state)));
    if let Some(message) = status.message.filter(|m| !m.is_empty()) {
        lines.push(aligned(" Message:", &capitalize(&message)));
    }
    lines.push(aligned(" Availability:", &pretty_enum(availability)));
    if let Some(address) = status.addr.filter(|a| !a.is_empty()) {
        lines.push(format!(" Address:\t\t{address}"));
    }
}

fn push_manager_status(lines: &mut Vec<String>, manager: &ManagerStatus) {
    let leader = if manager.leader == Some(true) {
        "Yes"
    } else {
        "No"
    };
    lines.push("Manager Status:".into());
    lines.push(format!(" Address:\t\t{}", text(&manager.addr)));
    lines.push(format!(
        " Raft Status:\t\t{}",
        pretty_enum(manager.reachability)
    ));
    lines.push(format!(" Leader:\t\t{leader}"));
}

/// Whole CPUs (docker truncates), and memory with binary units (empty when unknown).
fn push_resources(lines: &mut Vec<String>, resources: &ResourceObject) {
    let cpus = resources.nano_cpus.unwrap_or(0) / 1_000_000_000;
    let memory = resources.memory_bytes.filter(|&bytes| bytes != 0);
    let memory = memory.map(bytes_size).unwrap_or_default();
    lines.push("Resources:".into());
    lines.push(format!(" CPUs:\t\t\t{cpus}"));
    lines.push(format!(" Memory:\t\t{memory}"));
}

/// The TLS block, left out when the node reports no TLS information at all.
fn push_tls(lines: &mut Vec<String>, tls: &TlsInfo) {
    let fields = [
        &tls.trust_root,
        &tls.cert_issuer_subject,
        &tls.cert_issuer_public_key,
    ];
    if fields.iter().all(|field| text(field).is_empty()) {
        return;
    }
    lines.push("TLS Info:".into());
    lines.push(" TrustRoot:".into());
    lines.push(text(&tls.trust_root));
    lines.push(format!(
        " Issuer Subject:\t{}",
        text(&tls.cert_issuer_subject)
    ));
    lines.push(format!(
        " Issuer Public Key:\t{}",
        text(&tls.cert_issuer_public_key)
    ));
}

/// A label padded with spaces, then a tab, as the template aligns its longer labels.
fn aligned(label: &str, value: &str) -> String {
    format!("{label:<23}\t{value}")
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// When the node joined, printed as Go prints a `time.Time` (its zero value when absent).
fn joined_at(node: &Node) -> String {
    match date_text(node.created_at.as_ref()) {
        Some(date) => go_time(&date),
        None => "0001-01-01 00:00:00 +0000 UTC".into(),
    }
}

/// ` - key=value` lines under `title`, keys sorted as Go's templates range over maps.
fn push_labels(lines: &mut Vec<String>, title: &str, labels: Option<&HashMap<String, String>>) {
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        return;
    };
    lines.push(title.into());
    for (key, value) in labels.iter().collect::<BTreeMap<_, _>>() {
        if value.is_empty() {
            lines.push(format!(" - {key}"));
        } else {
            lines.push(format!(" - {key}={value}"));
        }
    }
}

/// The engine's plugins, one line per plugin type with the names of that type.
fn push_plugins(lines: &mut Vec<String>, plugins: &[EngineDescriptionPlugins]) {
    if plugins.is_empty() {
        return;
    }
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for plugin in plugins {
        let names = by_type.entry(text(&plugin.typ)).or_default();
        names.push(text(&plugin.name));
    }
    lines.push("Plugins:".into());
    for (typ, names) in by_type {
        match names.join(", ") {
            names if names.is_empty() => lines.push(format!(" {typ}:")),
            names => lines.push(format!(" {typ}:\t\t{names}")),
        }
    }
}
