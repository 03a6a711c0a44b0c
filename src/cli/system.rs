//! `shoal version` and `shoal info`, printed as `docker version` and `docker info` print them.

use anyhow::Result;
use bollard::API_DEFAULT_VERSION;
use bollard::models::{LocalNodeState, SwarmInfo, SystemInfo, SystemVersion};

use super::connect::Daemon;
use super::table::TabWriter;
use super::text::bytes_size;

/// `shoal version`: the client's versions, then the daemon's; the client half prints
/// even when the daemon cannot be reached.
pub async fn version(daemon: &Daemon) -> Result<()> {
    print!("{}", client_version());
    let server = daemon.client()?.version().await?;
    print!("\n{}", server_version(&server));
    Ok(())
}

/// `shoal info`: a subset of `docker info`, centred on the swarm.
pub async fn info(daemon: &Daemon) -> Result<()> {
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!();
    let info = daemon.client()?.info().await?;
    print!("{}", server_info(&info));
    info.warnings
        .iter()
        .flatten()
        .for_each(|w| eprintln!("{w}"));
    Ok(())
}

/// `docker version` lays its sections out with `tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)`.
fn version_writer() -> TabWriter {
    TabWriter::new(20, 1)
}

fn client_version() -> String {
    let mut out = version_writer();
    out.line(["Client:"]);
    out.line([" Version:", env!("CARGO_PKG_VERSION")]);
    out.line([" API version:".to_string(), API_DEFAULT_VERSION.to_string()]);
    out.line([
        " OS/Arch:".to_string(),
        os_arch(std::env::consts::OS, std::env::consts::ARCH),
    ]);
    out.render()
}

/// The daemon's half of `docker version`: the engine, then any other components.
fn server_version(server: &SystemVersion) -> String {
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut out = version_writer();
    match server.platform.as_ref().map(|p| p.name.as_str()) {
        Some(name) if !name.is_empty() => out.line([format!("Server: {name}")]),
        _ => out.line(["Server:"]),
    }
    out.line([" Engine:"]);
    out.line(["  Version:".to_string(), field(&server.version)]);
    let api = match &server.min_api_version {
        Some(min) => format!("{} (minimum version {min})", field(&server.api_version)),
        None => field(&server.api_version),
    };
    out.line(["  API version:".to_string(), api]);
    // Details a non-Go daemon may not have are left out rather than printed empty.
    let optional = [
        ("  Go version:", &server.go_version),
        ("  Git commit:", &server.git_commit),
        ("  Built:", &server.build_time),
    ];
    for (label, value) in optional {
        if let Some(value) = value {
            out.line([label, value.as_str()]);
        }
    }
    out.line([
        "  OS/Arch:".to_string(),
        format!("{}/{}", field(&server.os), field(&server.arch)),
    ]);
    let experimental = server.experimental.unwrap_or(false).to_string();
    out.line(["  Experimental:".to_string(), experimental]);
    let others = server
        .components
        .iter()
        .flatten()
        .filter(|c| c.name != "Engine");
    for component in others {
        out.line([format!(" {}:", component.name)]);
        out.line(["  Version:", component.version.as_str()]);
        let mut details: Vec<_> = component.details.iter().flatten().collect();
        details.sort();
        for (key, value) in details {
            out.line([format!("  {key}:"), value.clone()]);
        }
    }
    out.render()
}

/// An OS and architecture as Go names them, which is how docker prints them (`linux/amd64`).
fn os_arch(os: &str, arch: &str) -> String {
    let arch = match arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}/{arch}")
}

/// The `Server:` section of `docker info`, trimmed to what shoal reports, ending in a blank line.
fn server_info(info: &SystemInfo) -> String {
    let mut lines = vec!["Server:".to_string()];
    let non_empty = |lines: &mut Vec<String>, label: &str, value: &Option<String>| {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            lines.push(format!(" {label}: {value}"));
        }
    };
    non_empty(&mut lines, "Server Version", &info.server_version);
    push_swarm(&mut lines, &info.swarm.clone().unwrap_or_default());
    non_empty(&mut lines, "Kernel Version", &info.kernel_version);
    non_empty(&mut lines, "Operating System", &info.operating_system);
    non_empty(&mut lines, "OSType", &info.os_type);
    non_empty(&mut lines, "Architecture", &info.architecture);
    if let Some(cpus) = info.ncpu {
        lines.push(format!(" CPUs: {cpus}"));
    }
    if let Some(memory) = info.mem_total {
        lines.push(format!(" Total Memory: {}", bytes_size(memory)));
    }
    non_empty(&mut lines, "Name", &info.name);
    non_empty(&mut lines, "ID", &info.id);
    lines.join("\n") + "\n\n"
}

/// Docker's swarm block: its state, then (unless inactive or locked) this node's part in
/// the swarm and, on a healthy manager, the cluster's.
fn push_swarm(lines: &mut Vec<String>, swarm: &SwarmInfo) {
    let state = swarm.local_node_state.unwrap_or(LocalNodeState::EMPTY);
    lines.push(format!(" Swarm: {state}"));
    if matches!(state, LocalNodeState::INACTIVE | LocalNodeState::LOCKED) {
        return;
    }
    lines.push(format!(
        "  NodeID: {}",
        swarm.node_id.clone().unwrap_or_default()
    ));
    let error = swarm.error.clone().unwrap_or_default();
    if !error.is_empty() {
        lines.push(format!("  Error: {error}"));
    }
    let is_manager = swarm.control_available.unwrap_or(false);
    lines.push(format!("  Is Manager: {is_manager}"));
    let healthy = error.is_empty() && state != LocalNodeState::ERROR;
    if let Some(cluster) = swarm.cluster.as_ref().filter(|_| is_manager && healthy) {
        lines.push(format!(
            "  ClusterID: {}",
            cluster.id.clone().unwrap_or_default()
        ));
        lines.push(format!("  Managers: {}", swarm.managers.unwrap_or(0)));
        lines.push(format!("  Nodes: {}", swarm.nodes.unwrap_or(0)));
        if let Some(pools) = &cluster.default_addr_pool {
            // Docker follows every pool with two spaces, the last one too.
            let pools: String = pools.iter().map(|p| format!("{p}  ")).collect();
            lines.push(format!("  Default Address Pool: {pools}"));
            lines.push(format!(
                "  SubnetSize: {}",
                cluster.subnet_size.unwrap_or(0)
            ));
        }
        if let Some(port) = cluster.data_path_port.filter(|&p| p > 0) {
            lines.push(format!("  Data Path Port: {port}"));
        }
    }
    lines.push(format!(
        "  Node Address: {}",
        swarm.node_addr.clone().unwrap_or_default()
    ));
    let mut managers: Vec<String> = swarm
        .remote_managers
        .iter()
        .flatten()
        .map(|peer| peer.addr.clone().unwrap_or_default())
        .collect();
    if !managers.is_empty() {
        managers.sort();
        lines.push("  Manager Addresses:".into());
        lines.extend(managers.iter().map(|addr| format!("   {addr}")));
    }
}

#[cfg(test)]
#[path = "system_tests.rs"]
mod tests;
