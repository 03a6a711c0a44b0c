//! A harness for in-process clusters: each node is a real daemon with its own data directory,
//! API socket and control port on loopback.

// Each test crate uses its own part of the harness.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    NodeSpecRoleEnum, NodeState, Reachability, SwarmInitRequest, SwarmJoinRequest,
};
use bollard::query_parameters::{
    DeleteNodeOptionsBuilder, ListNodesOptions, UpdateNodeOptionsBuilder, UpdateSwarmOptionsBuilder,
};
use shoal::daemon::{DaemonArgs, ExecutorChoice};
use shoal::pki::NodeCredentials;
use shoal::rpc::proto::{Request, Response};
use shoal::rpc::{Connection, Tls};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any condition may take to come true.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `condition` until it holds, or fails the test saying what never happened.
pub async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {PATIENCE:?}");
}

/// One daemon.
struct TestNode {
    name: String,
    dir: TempDir,
    running: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
}

impl TestNode {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("shoal.sock")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn start(&mut self) {
        let args = DaemonArgs {
            socket: self.socket(),
            data_dir: self.data_dir(),
            hostname: Some(self.name.clone()),
            executor: ExecutorChoice::Process,
            docker_host: "unix:///nonexistent".into(),
            shim: Some(env!("CARGO_BIN_EXE_shoal").into()),
            // Many nodes share this namespace: they follow route tables but build no devices.
            no_data_plane: true,
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(shoal::daemon::run_until(args, async {
            let _ = stopped.await;
        }));
        let socket = self.socket();
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(
                !task.is_finished(),
                "{} exited: {:?}",
                self.name,
                task.await
            );
            let client = Docker::connect_with_unix(
                socket.to_str().unwrap(),
                30,
                bollard::API_DEFAULT_VERSION,
            );
            if let Ok(client) = client {
                if client.ping().await.is_ok() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} does not answer its socket",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.running = Some((stop, task));
    }

    async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.await
                .expect("daemon task")
                .expect("daemon stops cleanly");
        }
    }

    fn client(&self) -> Docker {
        Docker::connect_with_unix(
            self.socket().to_str().unwrap(),
            30,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap()
    }
}

/// What `node ls` says about the managers.
#[derive(Debug, Default)]
pub struct ManagersView {
    /// Nodes with the manager role and a place in Raft.
    pub managers: usize,
    /// Managers shown Leader.
    pub leaders: usize,
    /// Managers shown Reachable.
    pub reachable: usize,
}

/// Several daemons that form one swarm.
pub struct Cluster {
    nodes: Vec<TestNode>,
}

impl Cluster {
    /// `count` managers: the first inits the swarm, the others join with the manager token.
    pub async fn managers(count: usize) -> Cluster {
        let mut cluster = Cluster { nodes: Vec::new() };
        let first = cluster.add_node().await;
        let init = SwarmInitRequest {
            listen_addr: Some("127.0.0.1:0".into()),
            advertise_addr: Some("127.0.0.1".into()),
            ..Default::default()
        };
        cluster
            .client(first)
            .init_swarm(init)
            .await
            .expect("swarm init");
        for _ in 1..count {
            let token = cluster
                .client(0)
                .inspect_swarm()
                .await
                .unwrap()
                .join_tokens
                .unwrap()
                .manager
                .unwrap();
            let addr = cluster.control_addr(0).await;
            let node = cluster.add_node().await;
            cluster
                .join(node, &token, &addr)
                .await
                .expect("manager join");
        }
        eventually("every manager is in Raft", || async {
            cluster.managers_view(0).await.reachable == count
        })
        .await;
        cluster
    }

    async fn add_node(&mut self) -> usize {
        let index = self.nodes.len();
        let mut node = TestNode {
            name: format!("n{}", index + 1),
            // Named after the node, so a process left behind says where it came from.
            dir: tempfile::Builder::new()
                .prefix(&format!("shoal-n{}-", index + 1))
                .tempdir()
                .unwrap(),
            running: None,
        };
        node.start().await;
        self.nodes.push(node);
        index
    }

    /// A new node joined as a worker.
    pub async fn join_worker(&mut self) -> usize {
        let token = self.worker_token(0).await;
        let addr = self.control_addr(0).await;
        let node = self.add_node().await;
        self.join(node, &token, &addr).await.expect("worker join");
        node
    }

    async fn join(&self, node: usize, token: &str, addr: &str) -> Result<(), String> {
        let request = SwarmJoinRequest {
            listen_addr: Some("127.0.0.1:0".into()),
            advertise_addr: Some("127.0.0.1".into()),
            remote_addrs: Some(vec![addr.to_string()]),
            join_token: Some(token.to_string()),
            ..Default::default()
        };
        self.client(node)
            .join_swarm(request)
            .await
            .map_err(|e| e.to_string())
    }

    /// A new node tries to join with `token`; the error text if it is refused.
    pub async fn try_join(&mut self, token: &str, addr: &str) -> Result<(), String> {
        let node = self.add_node().await;
        self.join(node, token, addr).await
    }

    /// The API client of node `i`.
    pub fn client(&self, i: usize) -> Docker {
        self.nodes[i].client()
    }

    /// Stops node `i` (its data stays).
    pub async fn stop(&mut self, i: usize) {
        self.nodes[i].stop().await;
    }

    /// Starts node `i` again on its data.
    pub async fn start(&mut self, i: usize) {
        self.nodes[i].start().await;
    }

    /// Stops every node.
    pub async fn shutdown(&mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
    }

    /// Node `i`'s swarm node ID.
    pub async fn node_id(&self, i: usize) -> String {
        self.client(i)
            .info()
            .await
            .unwrap()
            .swarm
            .unwrap()
            .node_id
            .unwrap()
    }

    /// Node `i`'s control address (it must be a manager).
    pub async fn control_addr(&self, i: usize) -> String {
        let id = self.node_id(i).await;
        let node = self.client(i).inspect_node(&id).await.unwrap();
        node.manager_status.unwrap().addr.unwrap()
    }

    /// The index of the node that leads Raft.
    pub async fn leader_index(&self) -> usize {
        for i in 0..self.nodes.len() {
            if self.nodes[i].running.is_none() {
                continue;
            }
            let id = self.node_id(i).await;
            if let Ok(node) = self.client(i).inspect_node(&id).await {
                if node.manager_status.and_then(|m| m.leader) == Some(true) {
                    return i;
                }
            }
        }
        panic!("no node leads");
    }

    /// What node `i` shows about the managers.
    pub async fn managers_view(&self, i: usize) -> ManagersView {
        let Ok(nodes) = self.client(i).list_nodes(None::<ListNodesOptions>).await else {
            return ManagersView::default();
        };
        let mut view = ManagersView::default();
        for status in nodes.into_iter().filter_map(|n| n.manager_status) {
            view.managers += 1;
            view.leaders += usize::from(status.leader == Some(true));
            view.reachable += usize::from(status.reachability == Some(Reachability::REACHABLE));
        }
        view
    }

    /// The state (`ready`, `down`) node `i` shows for node `id`.
    pub async fn node_state(&self, i: usize, id: &str) -> String {
        let node = self.client(i).inspect_node(id).await.ok();
        let state = node
            .and_then(|n| n.status)
            .and_then(|s| s.state)
            .unwrap_or(NodeState::UNKNOWN);
        state.to_string()
    }

    /// The worker join token as node `i` shows it.
    pub async fn worker_token(&self, i: usize) -> String {
        match self.client(i).inspect_swarm().await {
            Ok(swarm) => swarm.join_tokens.unwrap().worker.unwrap(),
            Err(e) => e.to_string(),
        }
    }

    /// Rotates the worker token through node `i`; returns the new token.
    pub async fn rotate_worker_token(&self, i: usize) -> String {
        let client = self.client(i);
        let mut last_error = String::new();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let swarm = match client.inspect_swarm().await {
                Ok(swarm) => swarm,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let version = swarm.version.unwrap().index.unwrap() as i64;
            let options = UpdateSwarmOptionsBuilder::new()
                .version(version)
                .rotate_worker_token(true)
                .build();
            match client.update_swarm(swarm.spec.unwrap(), options).await {
                Ok(()) => return self.worker_token(i).await,
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no write through node {i}: {last_error}");
    }

    /// Sets the dispatcher heartbeat period through node `i`.
    pub async fn set_heartbeat(&self, i: usize, period: Duration) {
        let client = self.client(i);
        let swarm = client.inspect_swarm().await.unwrap();
        let mut spec = swarm.spec.unwrap();
        spec.dispatcher
            .get_or_insert_with(Default::default)
            .heartbeat_period = Some(period.as_nanos() as i64);
        let options = UpdateSwarmOptionsBuilder::new()
            .version(swarm.version.unwrap().index.unwrap() as i64)
            .build();
        client.update_swarm(spec, options).await.unwrap();
    }

    /// Changes node `id`'s role through node `i`.
    pub async fn set_role(&self, i: usize, id: &str, role: NodeSpecRoleEnum) -> Result<(), String> {
        let client = self.client(i);
        let node = client.inspect_node(id).await.map_err(|e| e.to_string())?;
        let mut spec = node.spec.unwrap();
        spec.role = Some(role);
        let options = UpdateNodeOptionsBuilder::new()
            .version(node.version.unwrap().index.unwrap() as i64)
            .build();
        client
            .update_node(id, spec, options)
            .await
            .map_err(|e| e.to_string())
    }

    /// Removes node `id` through node `i` (no force).
    pub async fn remove_node(&self, i: usize, id: &str) -> Result<(), String> {
        let options = DeleteNodeOptionsBuilder::new().force(false).build();
        self.client(i)
            .delete_node(id, Some(options))
            .await
            .map_err(|e| e.to_string())
    }

    async fn call_as(&self, i: usize, addr: &str, request: Request) -> String {
        let dir = self.nodes[i].data_dir().join("swarm/certificates");
        let credentials = NodeCredentials::load(&dir).unwrap().unwrap();
        let cluster = shoal::pki::NodeIdentity::from_cert_pem(&credentials.cert_pem)
            .unwrap()
            .cluster_id;
        let tls = Arc::new(Tls::new(&credentials, &cluster).unwrap());
        let mut connection = Connection::connect(addr, tls.client_config(), Duration::from_secs(5))
            .await
            .unwrap();
        match connection
            .call::<Request, Response>(&request, Duration::from_secs(5))
            .await
        {
            Ok(response) => format!("{response:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// What a manager answers a Raft vote request made with node `i`'s certificate.
    pub async fn raft_vote_as(&self, i: usize, addr: &str) -> String {
        let vote = openraft::raft::VoteRequest {
            vote: openraft::Vote::new(99, 1),
            last_log_id: None,
        };
        self.call_as(i, addr, Request::Vote(vote)).await
    }

    /// What a manager answers a heartbeat made with node `i`'s certificate.
    pub async fn heartbeat_as(&self, i: usize, addr: &str) -> String {
        self.call_as(i, addr, Request::Heartbeat).await
    }
}

/// Whether a plaintext client on the control port is left without an answer.
pub async fn plaintext_gets_no_answer(addr: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    // A TLS server answers garbage with an alert or a close, never with data we asked for.
    !matches!(read, Ok(Ok(n)) if n > 0 && buf[..n].starts_with(b"HTTP"))
}

/// A service spec running `args` (a program and its arguments) with a 1 s stop grace period.
pub fn service_spec(
    name: &str,
    replicas: Option<i64>,
    args: &[&str],
) -> bollard::models::ServiceSpec {
    use bollard::models::{
        ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    };
    let mode = match replicas {
        Some(n) => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(n) }),
            ..Default::default()
        },
        None => ServiceSpecMode {
            global: Some(Default::default()),
            ..Default::default()
        },
    };
    let container = TaskSpecContainerSpec {
        image: Some(args[0].to_string()),
        args: Some(args[1..].iter().map(|a| a.to_string()).collect()),
        stop_grace_period: Some(1_000_000_000),
        ..Default::default()
    };
    ServiceSpec {
        name: Some(name.into()),
        mode: Some(mode),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Cluster {
    /// Creates a service through node `i`.
    pub async fn create_service(&self, i: usize, spec: bollard::models::ServiceSpec) {
        self.client(i)
            .create_service(spec, None)
            .await
            .expect("service create");
    }

    /// Changes service `name` through node `i` with `edit`, at the version `version_offset`
    /// below the current one (0: current; more: a stale read).
    pub async fn update_service(
        &self,
        i: usize,
        name: &str,
        version_offset: i32,
        rollback: bool,
        edit: impl FnOnce(&mut bollard::models::ServiceSpec),
    ) -> Result<(), String> {
        let client = self.client(i);
        let service = client
            .inspect_service(name, None)
            .await
            .map_err(|e| e.to_string())?;
        let mut spec = service.spec.unwrap();
        edit(&mut spec);
        let version = service.version.unwrap().index.unwrap() as i32 - version_offset;
        let options = bollard::query_parameters::UpdateServiceOptions {
            version,
            rollback: rollback.then(|| "previous".to_string()),
            ..Default::default()
        };
        client
            .update_service(name, spec, options, None)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The JSON node `i` answers `GET path` with, as raw as the docker CLI reads it (bollard's
    /// models leave out fields such as a task's `NetworksAttachments`).
    pub async fn get_json(&self, i: usize, path: &str) -> serde_json::Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::UnixStream::connect(self.nodes[i].socket())
            .await
            .expect("connect to the API socket");
        let request = format!("GET {path} HTTP/1.0\r\nHost: shoal\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).expect("UTF-8 response");
        let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Service `name`'s tasks as node `i` lists them.
    pub async fn tasks(&self, i: usize, name: &str) -> Vec<bollard::models::Task> {
        let filters =
            std::collections::HashMap::from([("service".to_string(), vec![name.to_string()])]);
        let options = bollard::query_parameters::ListTasksOptions {
            filters: Some(filters),
        };
        self.client(i)
            .list_tasks(Some(options))
            .await
            .unwrap_or_default()
    }

    /// How many tasks of service `name` run on each node (by hostname), wanted running.
    pub async fn running_per_node(
        &self,
        i: usize,
        name: &str,
    ) -> std::collections::BTreeMap<String, usize> {
        let hostnames: std::collections::HashMap<String, String> = self
            .client(i)
            .list_nodes(None::<ListNodesOptions>)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|n| {
                (
                    n.id.unwrap_or_default(),
                    n.description.and_then(|d| d.hostname).unwrap_or_default(),
                )
            })
            .collect();
        let mut counts = std::collections::BTreeMap::new();
        for task in self.tasks(i, name).await {
            let running = task.status.as_ref().and_then(|s| s.state)
                == Some(bollard::models::TaskState::RUNNING);
            if running && task.desired_state == Some(bollard::models::TaskState::RUNNING) {
                let host = hostnames
                    .get(task.node_id.as_deref().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default();
                *counts.entry(host).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Removes service `name` through node `i` and waits until none of its tasks is left, in
    /// the store or as a process.
    pub async fn remove_service(&self, i: usize, name: &str) {
        let service = self
            .client(i)
            .inspect_service(name, None)
            .await
            .expect("service inspect");
        let id = service.id.unwrap();
        let container = service
            .spec
            .and_then(|s| s.task_template)
            .and_then(|t| t.container_spec)
            .unwrap_or_default();
        let mut command = vec![container.image.unwrap_or_default()];
        command.extend(container.args.unwrap_or_default());
        self.client(i)
            .delete_service(name)
            .await
            .expect("service rm");
        eventually(&format!("the tasks of {name} are gone"), || async {
            // A removed service's tasks are found by its ID; they have no name any more.
            let filters =
                std::collections::HashMap::from([("service".to_string(), vec![id.clone()])]);
            let options = bollard::query_parameters::ListTasksOptions {
                filters: Some(filters),
            };
            self.client(i)
                .list_tasks(Some(options))
                .await
                .is_ok_and(|t| t.is_empty())
        })
        .await;
        let roots: Vec<PathBuf> = self
            .nodes
            .iter()
            .map(|n| n.dir.path().to_path_buf())
            .collect();
        eventually(&format!("no process of {name} is left"), || async {
            processes_running(&command, &roots) == 0
        })
        .await;
    }

    /// Sets node `id`'s availability through node `i`.
    pub async fn set_availability(
        &self,
        i: usize,
        id: &str,
        availability: bollard::models::NodeSpecAvailabilityEnum,
    ) {
        let client = self.client(i);
        let node = client.inspect_node(id).await.unwrap();
        let mut spec = node.spec.unwrap();
        spec.availability = Some(availability);
        let options = UpdateNodeOptionsBuilder::new()
            .version(node.version.unwrap().index.unwrap() as i64)
            .build();
        client.update_node(id, spec, options).await.unwrap();
    }
}

/// How many processes run exactly `command` (program name and arguments) under a task shim
/// whose directory lies in one of `roots` (other tests and labs may run the same command).
pub fn processes_running(command: &[String], roots: &[PathBuf]) -> usize {
    let wanted = command.join("\0");
    let cmdline = |pid: &str| {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        Some(
            String::from_utf8_lossy(&raw)
                .trim_end_matches('\0')
                .to_string(),
        )
    };
    let parent = |pid: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(|p| p.trim().to_string())
    };
    let entries = std::fs::read_dir("/proc").expect("reading /proc");
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|pid| cmdline(pid).is_some_and(|c| c == wanted))
        .filter(|pid| {
            let shim = parent(pid).and_then(|p| cmdline(&p)).unwrap_or_default();
            roots
                .iter()
                .any(|root| shim.contains(&*root.to_string_lossy()))
        })
        .count()
}
