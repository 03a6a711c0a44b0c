//! The node side of a dispatcher session: every node (managers too) keeps one with the leader.
//!
//! The agent heartbeats at the period the dispatcher asks for, follows the leader when it moves,
//! falls back to the other managers when its manager dies, renews the node's certificate at a
//! random point between 50% and 80% of its life, and reports role changes and the manager list
//! to the daemon. Its worker runs the node's tasks.

mod host_ports;
mod logs;
mod network;
mod worker;

pub use network::NodeNetwork;
pub use worker::Worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::pki::{NodeCredentials, NodeIdentity, NodeKey};
use crate::rpc::proto::{Failure, Request, Response, SessionInfo, StatusReport};
use crate::rpc::{Connection, Tls};

/// How long to wait for a manager to accept a session.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a heartbeat may take to be answered.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before trying the managers again when none answered.
const RETRY_PAUSE: Duration = Duration::from_millis(300);

/// What the agent tells the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The managers' control addresses changed.
    Managers(Vec<String>),
    /// The node's role changed; its certificate already carries the new one.
    Role {
        /// Whether the node is now a manager.
        manager: bool,
    },
}

/// What the agent starts from.
pub struct AgentConfig {
    /// Where the node's certificate and key live (renewal rewrites them).
    pub certificates_dir: PathBuf,
    /// The node's TLS identity, swapped on renewal.
    pub tls: Arc<Tls>,
    /// The managers known so far.
    pub managers: Vec<String>,
    /// Whether the node is a manager now.
    pub manager: bool,
    /// Runs the node's tasks.
    pub worker: Arc<Worker>,
    /// The node's overlays, which follow the route updates.
    pub network: Arc<NodeNetwork>,
}

/// Runs the agent until aborted; `reports` are the worker's status reports for the leader.
pub async fn run(
    config: AgentConfig,
    reports: mpsc::UnboundedReceiver<StatusReport>,
    events: mpsc::Sender<AgentEvent>,
) {
    let renew_at = NodeCredentials::load(&config.certificates_dir)
        .ok()
        .flatten()
        .and_then(|current| renewal_time(&current.cert_pem).ok())
        .unwrap_or_else(SystemTime::now);
    let reports = Arc::new(tokio::sync::Mutex::new(reports));
    let agent = Agent {
        config,
        events,
        reports,
        leader: None,
        renew_at,
    };
    agent.run().await
}

struct Agent {
    config: AgentConfig,
    events: mpsc::Sender<AgentEvent>,
    reports: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<StatusReport>>>,
    leader: Option<String>,
    renew_at: SystemTime,
}

/// How long a long poll may wait for its answer (the manager answers within 20 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `first`, then whatever `answered` makes of each answer, on a connection of its own for
/// as long as the manager answers; `answered` gives back an answer it did not expect. Returns
/// why it stopped.
async fn long_poll<Answered>(
    addr: &str,
    tls: &Tls,
    first: Request,
    mut answered: impl FnMut(Response) -> Answered,
) -> String
where
    Answered: Future<Output = Result<Request, Response>>,
{
    let mut connection = match Connection::connect(addr, tls.client_config(), CONNECT_TIMEOUT).await
    {
        Ok(connection) => connection,
        Err(e) => return e.to_string(),
    };
    let mut request = first;
    loop {
        let response = match connection
            .call::<Request, Response>(&request, POLL_TIMEOUT)
            .await
        {
            Ok(response) => response,
            Err(e) => return e.to_string(),
        };
        request = match answered(response).await {
            Ok(next) => next,
            Err(Response::Failed(failure)) => return failure.to_string(),
            Err(other) => return format!("unexpected answer {other:?}"),
        };
    }
}

/// Follows the node's assignments for as long as the manager answers; returns why it stopped.
async fn poll_assignments(addr: &str, tls: &Tls, worker: &Arc<Worker>) -> String {
    let first = Request::Assignments { known: 0 };
    long_poll(addr, tls, first, |response| async move {
        match response {
            Response::Assignments { tag, tasks } => {
                worker.apply(tasks).await;
                Ok(Request::Assignments { known: tag })
            }
            other => Err(other),
        }
    })
    .await
}

/// Follows the node's route table for as long as the manager answers; returns why it stopped.
async fn poll_routes(addr: &str, tls: &Tls, network: &NodeNetwork) -> String {
    let first = Request::Routes { known: 0 };
    long_poll(addr, tls, first, |response| async move {
        match response {
            Response::Routes(update) => {
                if update.reset || !update.changes.is_empty() {
                    let updated = network
                        .update(update.reset, &update.changes, update.data_path_port)
                        .await;
                    if let Err(e) = updated {
                        tracing::error!("cannot set up this node's overlays: {e:#}");
                    }
                }
                Ok(Request::Routes { known: update.tag })
            }
            other => Err(other),
        }
    })
    .await
}

/// Sends the worker's status reports, all of them again first (what went into a connection
/// that broke may never have arrived); returns why it stopped.
async fn send_reports(
    addr: &str,
    tls: &Tls,
    worker: &Worker,
    reports: &tokio::sync::Mutex<mpsc::UnboundedReceiver<StatusReport>>,
) -> String {
    let mut connection = match Connection::connect(addr, tls.client_config(), CONNECT_TIMEOUT).await
    {
        Ok(connection) => connection,
        Err(e) => return e.to_string(),
    };
    let mut reports = reports.lock().await;
    let mut batch = worker.statuses();
    loop {
        if !batch.is_empty() {
            match connection
                .call::<Request, Response>(&Request::TaskStatuses(batch), CALL_TIMEOUT)
                .await
            {
                Ok(Response::Done) => {}
                Ok(other) => return format!("status reports refused: {other:?}"),
                Err(e) => return e.to_string(),
            }
        }
        let Some(first) = reports.recv().await else {
            return "the worker stopped".into();
        };
        batch = vec![first];
        while let Ok(more) = reports.try_recv() {
            batch.push(more);
        }
    }
}

/// How a session with one manager ended.
enum SessionEnd {
    /// The manager is not the leader; go there.
    Redirect(Option<String>),
    /// The manager failed or refused; try another.
    Failed(String),
}

impl Agent {
    async fn run(mut self) {
        loop {
            let candidates: Vec<String> = self
                .leader
                .take()
                .into_iter()
                .chain(self.config.managers.clone())
                .collect();
            for addr in candidates {
                match self.session(&addr).await {
                    SessionEnd::Redirect(leader) => {
                        self.leader = leader;
                        break;
                    }
                    SessionEnd::Failed(reason) => {
                        tracing::debug!(manager = %addr, "session ended: {reason}")
                    }
                }
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn session(&mut self, addr: &str) -> SessionEnd {
        let config = self.config.tls.client_config();
        let mut connection = match Connection::connect(addr, config, CONNECT_TIMEOUT).await {
            Ok(connection) => connection,
            Err(e) => return SessionEnd::Failed(e.to_string()),
        };
        // Assignments and status reports travel on connections of their own beside the
        // heartbeats; the session ends when any of them fails.
        let tls = self.config.tls.clone();
        let worker = self.config.worker.clone();
        let reports = self.reports.clone();
        let network = self.config.network.clone();
        let tasks = async {
            tokio::select! {
                reason = poll_assignments(addr, &tls, &worker) => reason,
                reason = poll_routes(addr, &tls, &network) => reason,
                reason = send_reports(addr, &tls, &worker, &reports) => reason,
                reason = logs::serve_subscriptions(addr, &tls, worker.executor()) => reason,
            }
        };
        tokio::pin!(tasks);
        loop {
            let info = match connection
                .call::<Request, Response>(&Request::Heartbeat, CALL_TIMEOUT)
                .await
            {
                Ok(Response::Session(info)) => info,
                Ok(Response::Failed(Failure::NotLeader { leader })) => {
                    return SessionEnd::Redirect(leader);
                }
                Ok(Response::Failed(failure)) => {
                    tracing::warn!(manager = %addr, "the manager refused this node's session: {failure}");
                    return SessionEnd::Failed(failure.to_string());
                }
                Ok(other) => return SessionEnd::Failed(format!("unexpected answer {other:?}")),
                Err(e) => return SessionEnd::Failed(e.to_string()),
            };
            if let Err(e) = self.follow(&mut connection, &info).await {
                return SessionEnd::Failed(e.to_string());
            }
            let period = Duration::from_millis(info.period_ms.max(100));
            let pause = tokio::time::sleep(period);
            // The task loops first run here, once this manager has taken a heartbeat as the leader.
            tokio::select! {
                reason = &mut tasks => return SessionEnd::Failed(reason),
                _ = pause => {}
            }
        }
    }

    /// Acts on what the dispatcher said: new managers, a new role, a due renewal.
    async fn follow(
        &mut self,
        connection: &mut Connection,
        info: &SessionInfo,
    ) -> anyhow::Result<()> {
        if info.managers != self.config.managers && !info.managers.is_empty() {
            self.config.managers = info.managers.clone();
            self.events
                .send(AgentEvent::Managers(info.managers.clone()))
                .await?;
        }
        let role_changed = info.manager != self.config.manager;
        if role_changed || SystemTime::now() >= self.renew_at {
            self.renew(connection).await?;
        }
        if role_changed {
            self.config.manager = info.manager;
            self.events
                .send(AgentEvent::Role {
                    manager: info.manager,
                })
                .await?;
        }
        Ok(())
    }

    /// Gets a certificate for a fresh key, saves it, and uses it for new connections.
    async fn renew(&mut self, connection: &mut Connection) -> anyhow::Result<()> {
        let dir = &self.config.certificates_dir;
        let current = NodeCredentials::load(dir)?
            .ok_or_else(|| anyhow::anyhow!("no certificate in {}", dir.display()))?;
        let key = NodeKey::generate()?;
        let request = Request::Renew {
            csr_pem: key.csr_pem()?,
        };
        let cert_pem = match connection
            .call::<Request, Response>(&request, CALL_TIMEOUT)
            .await?
        {
            Response::Certificate { cert_pem } => cert_pem,
            other => anyhow::bail!("certificate renewal refused: {other:?}"),
        };
        let renewed = NodeCredentials {
            ca_cert_pem: current.ca_cert_pem,
            cert_pem,
            key_pem: key.key_pem(),
        };
        renewed.save(dir)?;
        self.config.tls.update(&renewed)?;
        self.renew_at = renewal_time(&renewed.cert_pem)?;
        tracing::info!("node certificate renewed");
        Ok(())
    }
}

/// A random point between 50% and 80% of the certificate's remaining life, as swarm does.
fn renewal_time(cert_pem: &str) -> anyhow::Result<SystemTime> {
    let identity = NodeIdentity::from_cert_pem(cert_pem)?;
    let now = SystemTime::now();
    let life = identity.not_after.duration_since(now).unwrap_or_default();
    Ok(now + life.mul_f64(rand::random_range(0.5..0.8)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Role, RootCa};

    #[test]
    fn renewal_falls_between_half_and_four_fifths_of_the_life() {
        let ca = RootCa::generate().unwrap();
        let key = NodeKey::generate().unwrap();
        let life = Duration::from_secs(10 * 3600);
        let cert = ca
            .sign_csr(&key.csr_pem().unwrap(), "n", Role::Worker, "c", life)
            .unwrap();
        let remaining = NodeIdentity::from_cert_pem(&cert)
            .unwrap()
            .not_after
            .duration_since(SystemTime::now())
            .unwrap();
        for _ in 0..20 {
            let at = renewal_time(&cert)
                .unwrap()
                .duration_since(SystemTime::now())
                .unwrap();
            assert!(
                at >= remaining.mul_f64(0.49) && at <= remaining.mul_f64(0.8),
                "{at:?} of {remaining:?}"
            );
        }
    }
}
