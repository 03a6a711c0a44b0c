//! The host-mode published ports of this node's tasks: bound on this node while the task runs
//! and forwarded into its network namespace ([`crate::net::mesh::host`]).
//!
//! A port that cannot be published (taken by something else on the node, an unsupported
//! protocol) does not stop the task: the daemon log and the task's status message say so, and
//! the task's port status lists only the ports that were bound, as docker's does.

use std::path::Path;

use bollard::models::{EndpointPortConfig, EndpointPortConfigProtocolEnum, PortStatus};

use crate::exec::Executor;
use crate::net::mesh::host::{HostForwarder, HostPort, UDP_IDLE};
use crate::net::routes::Protocol;
use crate::store::state::port_protocol;

/// One task's host-mode ports: their forwarders, and how publishing them went.
#[derive(Debug, Default)]
pub(super) struct Published {
    forwarders: Vec<HostForwarder>,
    /// The ports bound, with the published numbers the node gave them.
    ports: Vec<EndpointPortConfig>,
    /// What could not be published, one phrase each.
    problems: Vec<String>,
}

impl Published {
    /// Publishes `ports` for the running task `task_id`, whose namespace `executor` knows.
    pub(super) async fn start(
        executor: &dyn Executor,
        task_id: &str,
        ports: &[EndpointPortConfig],
    ) -> Published {
        if ports.is_empty() {
            return Published::default();
        }
        let Some(netns) = executor.netns_path(task_id).await else {
            let problem = "host ports not published: the task is not running".to_string();
            tracing::warn!(task = %task_id, "{problem}");
            return Published {
                problems: vec![problem],
                ..Published::default()
            };
        };
        let mut published = Published::default();
        for port in ports {
            published.add(task_id, port, &netns).await;
        }
        published
    }

    async fn add(&mut self, task_id: &str, port: &EndpointPortConfig, netns: &Path) {
        let forwarder = match host_port(port) {
            Ok(host) => HostForwarder::start(host, netns, UDP_IDLE)
                .await
                .map_err(|e| format!("host port {}: {e}", describe(port))),
            Err(problem) => Err(problem),
        };
        match forwarder {
            Ok(forwarder) => {
                self.ports.push(EndpointPortConfig {
                    published_port: Some(i64::from(forwarder.local_addr().port())),
                    ..port.clone()
                });
                self.forwarders.push(forwarder);
            }
            Err(problem) => {
                tracing::warn!(task = %task_id, "{problem}");
                self.problems.push(problem);
            }
        }
    }

    /// The status message of the running task: `started`, then what could not be published.
    pub(super) fn message(&self) -> String {
        std::iter::once("started".to_string())
            .chain(self.problems.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The task's port status: the ports bound on this node, if it publishes any.
    pub(super) fn port_status(&self) -> Option<PortStatus> {
        (!self.ports.is_empty()).then(|| PortStatus {
            ports: Some(self.ports.clone()),
        })
    }

    /// Closes every port; returns once they are closed.
    pub(super) async fn close(self) {
        for forwarder in self.forwarders {
            forwarder.stop().await;
        }
    }
}

/// What to forward for one of the service's host-mode ports, or why it cannot be.
fn host_port(port: &EndpointPortConfig) -> Result<HostPort, String> {
    let protocol = match port_protocol(port) {
        EndpointPortConfigProtocolEnum::UDP => Protocol::Udp,
        EndpointPortConfigProtocolEnum::SCTP => {
            return Err(format!(
                "host port {}: sctp is not supported",
                describe(port)
            ));
        }
        _ => Protocol::Tcp,
    };
    let number = |n: Option<i64>| u16::try_from(n.unwrap_or(0)).ok();
    let (Some(published), Some(target)) = (number(port.published_port), number(port.target_port))
    else {
        return Err(format!("host port {}: out of range", describe(port)));
    };
    if target == 0 {
        return Err(format!("host port {}: no target port", describe(port)));
    }
    Ok(HostPort {
        protocol,
        published,
        target,
    })
}

/// A port as docker writes it in messages: `8081/tcp` (`0/tcp` when the node picks).
fn describe(port: &EndpointPortConfig) -> String {
    let protocol = port_protocol(port).to_string();
    format!("{}/{protocol}", port.published_port.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use bollard::models::EndpointPortConfigPublishModeEnum;

    use super::*;

    fn port(protocol: &str, published: Option<i64>, target: Option<i64>) -> EndpointPortConfig {
        EndpointPortConfig {
            protocol: protocol.parse().ok(),
            published_port: published,
            target_port: target,
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        }
    }

    #[test]
    fn ports_become_forwarders_or_say_why_not() {
        let host = |protocol, published| HostPort {
            protocol,
            published,
            target: 80,
        };
        let tcp = port("tcp", Some(8081), Some(80));
        assert_eq!(host_port(&tcp), Ok(host(Protocol::Tcp, 8081)));
        let udp = port("udp", Some(53), Some(80));
        assert_eq!(host_port(&udp), Ok(host(Protocol::Udp, 53)));
        // No protocol is TCP; no published port lets the node pick one.
        let bare = port("", None, Some(80));
        assert_eq!(host_port(&bare), Ok(host(Protocol::Tcp, 0)));

        let sctp = port("sctp", Some(9), Some(9));
        assert_eq!(
            host_port(&sctp),
            Err("host port 9/sctp: sctp is not supported".into())
        );
        let big = port("tcp", Some(70000), Some(80));
        assert_eq!(
            host_port(&big),
            Err("host port 70000/tcp: out of range".into())
        );
        let untargeted = port("tcp", Some(8081), None);
        assert_eq!(
            host_port(&untargeted),
            Err("host port 8081/tcp: no target port".into())
        );
    }

    #[test]
    fn problems_follow_the_started_message() {
        let mut published = Published::default();
        assert_eq!(published.message(), "started");
        assert_eq!(published.port_status(), None);
        published.problems.push("host port 8081/tcp: in use".into());
        published.problems.push("host port 9/sctp: no".into());
        assert_eq!(
            published.message(),
            "started; host port 8081/tcp: in use; host port 9/sctp: no"
        );
    }
}
