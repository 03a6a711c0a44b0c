//! A task's `/etc/resolv.conf`: the embedded DNS, which answers on the gateway address of each
//! overlay network (the ingress network has none). The file is made in the task's directory and
//! bind-mounted over `/etc/resolv.conf` in the task's mount namespace; a task on no overlay
//! keeps the host's.

use std::net::IpAddr;

/// The file's name in the task's directory.
pub const FILE: &str = "resolv.conf";
/// Where the task sees it.
pub const TARGET: &str = "/etc/resolv.conf";

/// The task's resolv.conf, asking `nameservers` in order (the gateways of the task's networks,
/// in attachment order); `None` for none, which keeps the host's file.
///
/// No `search` line: a task's short names are service names, which the embedded DNS answers
/// as they are. `ndots:0` makes the resolver try every name as given first, as docker's
/// swarm tasks do, so `db` is not first looked up as `db.<host's domain>`.
pub fn contents(nameservers: &[IpAddr]) -> Option<String> {
    if nameservers.is_empty() {
        return None;
    }
    let mut file: String = nameservers
        .iter()
        .map(|ip| format!("nameserver {ip}\n"))
        .collect();
    file.push_str("options ndots:0\n");
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_nameserver_per_network_in_order() {
        let gateways: Vec<IpAddr> = vec!["10.0.1.1".parse().unwrap(), "10.0.3.1".parse().unwrap()];
        assert_eq!(
            contents(&gateways).unwrap(),
            "nameserver 10.0.1.1\nnameserver 10.0.3.1\noptions ndots:0\n"
        );
    }

    #[test]
    fn no_network_keeps_the_hosts_file() {
        assert_eq!(contents(&[]), None);
    }
}
