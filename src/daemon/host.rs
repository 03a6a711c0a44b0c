//! Facts about the host this daemon runs on, as `docker info` and `node inspect` report them.

use std::net::IpAddr;

use bollard::models::{Platform, ResourceObject};

/// CPUs and memory the node offers to tasks.
pub fn resources() -> ResourceObject {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    ResourceObject {
        nano_cpus: Some(cpus * 1_000_000_000),
        memory_bytes: Some(memory_bytes()),
        ..Default::default()
    }
}

/// Total memory from /proc/meminfo, in bytes; 0 if it cannot be read.
pub fn memory_bytes() -> i64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<i64>()
                .ok()
        });
    kib.unwrap_or(0) * 1024
}

/// The platform in swarm's terms (`uname -m` style architecture).
pub fn platform() -> Platform {
    Platform {
        architecture: Some(std::env::consts::ARCH.into()),
        os: Some(std::env::consts::OS.into()),
    }
}

/// The architecture in Go's terms, as `docker version` prints it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The running kernel's release, like `uname -r`.
pub fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The distribution's name from /etc/os-release.
pub fn operating_system() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The IPv4 addresses of up interfaces other than loopback, with their interface names.
pub fn interface_addresses() -> Vec<(String, IpAddr)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| {
            let ip = IpAddr::V4(ifa.address?.as_sockaddr_in()?.ip());
            (!ip.is_loopback()).then_some((ifa.interface_name, ip))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        assert!(memory_bytes() > 0);
        assert!(resources().nano_cpus.unwrap() >= 1_000_000_000);
        assert!(!kernel_version().is_empty());
    }
}
