//! The node's overlays: the route table the leader sends, and what it is turned into here.
//!
//! Each route update becomes a new immutable [`RouteTable`] snapshot, swapped in whole: readers
//! (the overlay engine, `network inspect`) never see a table half-applied. The engine then opens
//! the TAP of each network new to the node, and the plumbing makes its bridge with the TAP as a
//! port. Before a task with networks starts, [`NodeNetwork::prepare`] makes its network
//! namespace and plumbs a veth from it to each network's bridge, so the task's network is up
//! when its program starts.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use crate::net::balancer::{Balancer, BalancerCounters};
use crate::net::mesh::{DirectConfig, Mesh, MeshConfig, MeshCounters};
use crate::net::overlay::{Engine, EngineConfig, EngineCounters};
use crate::net::plumb::{Attachment, NetnsFile, Plumber};
use crate::net::routes::{NetworkInfo, RouteChange, RouteTable};
use crate::store::Task;

/// The node's resolvers, where DNS sends names outside the cluster (the daemon runs in the
/// node's network namespace, so it reaches them all).
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// This node's view of its overlays, and the devices and engine that carry them.
pub struct NodeNetwork {
    node_id: String,
    underlay_ip: IpAddr,
    netns_dir: PathBuf,
    /// Whether to build devices and run the engine (off in tests that run many nodes unprivileged
    /// in one network namespace: they still follow the table).
    data_plane: bool,
    table: ArcSwap<RouteTable>,
    devices: Mutex<Devices>,
}

/// What exists while the node is on overlays; made on first need.
#[derive(Default)]
struct Devices {
    plumber: Option<Plumber>,
    /// The engine, with the data port it listens on.
    engine: Option<(Engine, u16)>,
    /// The routing mesh, from the first table that gives this node an ingress address.
    mesh: Option<Mesh>,
    /// The VIP balancer and DNS, while the table gives this node a balancer address.
    balancer: Option<Balancer>,
}

impl NodeNetwork {
    /// A node on no overlay yet. Its task namespaces are made in `netns_dir`; VXLAN is received
    /// at `underlay_ip` (the node's advertised address).
    pub fn new(
        node_id: &str,
        underlay_ip: IpAddr,
        netns_dir: PathBuf,
        data_plane: bool,
    ) -> Arc<NodeNetwork> {
        Arc::new(NodeNetwork {
            node_id: node_id.to_string(),
            underlay_ip,
            netns_dir,
            data_plane,
            table: ArcSwap::from_pointee(RouteTable::default()),
            devices: Mutex::new(Devices::default()),
        })
    }

    /// The current route table.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// The engine's counters, while it runs.
    pub async fn counters(&self) -> Option<EngineCounters> {
        let devices = self.devices.lock().await;
        devices.engine.as_ref().map(|(engine, _)| engine.counters())
    }

    /// The routing mesh's counters, while it runs.
    pub async fn mesh_counters(&self) -> Option<MeshCounters> {
        let devices = self.devices.lock().await;
        devices.mesh.as_ref().map(Mesh::counters)
    }

    /// The VIP balancer's counters, while it runs.
    pub async fn balancer_counters(&self) -> Option<BalancerCounters> {
        let devices = self.devices.lock().await;
        devices.balancer.as_ref().map(Balancer::counters)
    }

    /// Applies a route update from the leader (from an empty table if `reset`), then makes the
    /// devices and the engine follow it.
    pub async fn update(
        &self,
        reset: bool,
        changes: &[RouteChange],
        data_path_port: u16,
    ) -> anyhow::Result<()> {
        let old = self.table.load_full();
        let mut table = if reset {
            RouteTable::default()
        } else {
            RouteTable::clone(&old)
        };
        table.apply(changes);
        let table = Arc::new(table);
        self.table.store(table.clone());
        if !self.data_plane {
            return Ok(());
        }
        let mut devices = self.devices.lock().await;
        if table.networks.is_empty() && devices.engine.is_none() {
            return Ok(());
        }
        let plumber = devices.plumber()?;
        let engine = devices.engine(&self.node_id, self.underlay_ip, data_path_port)?;
        engine.install(table.clone())?;
        if let Some(mesh) =
            devices.mesh(table.ingress.is_some(), &self.node_id, self.underlay_ip)?
        {
            // Opens the stack's TAP if the ingress address is new: the bridge takes it below.
            mesh.install(table.clone(), data_path_port)?;
        }
        let wanted = !table.balancers.is_empty();
        if let Some(balancer) = devices.balancer(wanted, &self.node_id, self.underlay_ip)? {
            // Opens the TAPs of networks new to it: the bridges take them below. A TAP that
            // cannot be opened leaves that network without VIPs and DNS, not the others.
            if let Err(e) = balancer.install(table.clone(), data_path_port) {
                tracing::warn!("{e}");
            }
        }
        for routes in table.networks.values() {
            plumber.ensure_network(&routes.info).await?;
        }
        for (id, routes) in &old.networks {
            if !table.networks.contains_key(id) {
                plumber.remove_network(&routes.info).await?;
            }
        }
        Ok(())
    }

    /// Whether `task` gets network interfaces here: it is on networks, and this node runs the
    /// data plane.
    pub fn carries(&self, task: &Task) -> bool {
        !task.networks.is_empty() && self.data_plane
    }

    /// Makes `task`'s network namespace, attached to each of its networks (`networks` says what
    /// they are), for the task to start in; `None` if this node does not [carry](Self::carries)
    /// the task.
    pub async fn prepare(
        &self,
        task: &Task,
        networks: &[NetworkInfo],
    ) -> anyhow::Result<Option<PathBuf>> {
        if !self.carries(task) {
            return Ok(None);
        }
        std::fs::create_dir_all(&self.netns_dir)?;
        let path = self.netns_dir.join(&task.id);
        // A file left by a start that did not finish (the daemon died) is in the way.
        NetnsFile::remove(&path)?;
        NetnsFile::create(&path).map_err(|e| {
            anyhow::anyhow!("creating the network namespace of task {}: {e}", task.id)
        })?;
        let attached = self.attach(task, networks, &path).await;
        if attached.is_err() {
            let _ = NetnsFile::remove(&path);
        }
        attached.map(|()| Some(path))
    }

    /// Attaches `task`'s namespace at `netns` (one [prepared](Self::prepare) for it, or a running
    /// container's, made by its engine) to each of its networks.
    pub async fn attach(
        &self,
        task: &Task,
        networks: &[NetworkInfo],
        netns: &Path,
    ) -> anyhow::Result<()> {
        // One plumbing job at a time on this node: tasks starting together would otherwise race
        // to make (and tidy) the same bridge.
        let mut devices = self.devices.lock().await;
        let plumber = devices.plumber()?;
        for (index, attachment) in task.networks.iter().enumerate() {
            let network = networks
                .iter()
                .find(|n| n.id == attachment.network_id)
                .ok_or_else(|| anyhow::anyhow!("network {} not found", attachment.network_id))?;
            plumber.ensure_network(network).await?;
            let plumbing = Attachment {
                task_id: task.id.clone(),
                ifname: format!("eth{index}"),
                network: network.clone(),
                address: attachment.address,
                default_route: index == 0,
            };
            plumber.attach(netns, &plumbing).await?;
        }
        Ok(())
    }

    /// The task started (or failed to) in the namespace at `netns`: the task keeps the namespace
    /// alive now, so its file goes. (Its veths go with the namespace when the task ends.)
    pub fn started(&self, netns: &Path) {
        if let Err(e) = NetnsFile::remove(netns) {
            tracing::warn!("cannot remove the namespace file {}: {e}", netns.display());
        }
    }

    /// Takes the node off every overlay: stops the engine and removes the bridges.
    pub async fn leave(&self) {
        let old = self.table.swap(Arc::new(RouteTable::default()));
        let mut devices = self.devices.lock().await;
        devices.mesh = None;
        devices.balancer = None;
        devices.engine = None;
        let Some(plumber) = devices.plumber.clone() else {
            return;
        };
        for routes in old.networks.values() {
            if let Err(e) = plumber.remove_network(&routes.info).await {
                tracing::warn!("cannot remove the bridge of {}: {e}", routes.info.name);
            }
        }
    }
}

impl Devices {
    fn plumber(&mut self) -> anyhow::Result<Plumber> {
        if self.plumber.is_none() {
            self.plumber = Some(Plumber::new()?);
        }
        Ok(self.plumber.clone().expect("just made"))
    }

    /// The mesh, started when first `wanted`; `None` while never wanted. It sends to other
    /// nodes from `underlay_ip` as `node_id`.
    fn mesh(
        &mut self,
        wanted: bool,
        node_id: &str,
        underlay_ip: IpAddr,
    ) -> anyhow::Result<Option<&Mesh>> {
        if wanted && self.mesh.is_none() {
            let config = MeshConfig {
                direct: Some(DirectConfig {
                    local_node: node_id.to_string(),
                    underlay: underlay_ip,
                }),
                ..MeshConfig::default()
            };
            let mesh = Mesh::start(config)
                .map_err(|e| anyhow::anyhow!("starting the routing mesh: {e}"))?;
            tracing::info!("routing mesh started");
            self.mesh = Some(mesh);
        }
        Ok(self.mesh.as_ref())
    }

    /// The balancer, started when first `wanted` and stopped when no longer; `None` while not
    /// wanted. It sends to other nodes from `underlay_ip` as `node_id`.
    fn balancer(
        &mut self,
        wanted: bool,
        node_id: &str,
        underlay_ip: IpAddr,
    ) -> anyhow::Result<Option<&Balancer>> {
        if !wanted {
            self.balancer = None;
        } else if self.balancer.is_none() {
            let direct = DirectConfig {
                local_node: node_id.to_string(),
                underlay: underlay_ip,
            };
            let balancer = Balancer::start(Path::new(RESOLV_CONF), Some(direct))
                .map_err(|e| anyhow::anyhow!("starting the VIP balancer: {e}"))?;
            tracing::info!("VIP balancer started");
            self.balancer = Some(balancer);
        }
        Ok(self.balancer.as_ref())
    }

    /// The engine, started (or restarted, if the swarm's data port changed) on first need.
    fn engine(&mut self, node_id: &str, ip: IpAddr, port: u16) -> anyhow::Result<&Engine> {
        if self.engine.as_ref().is_none_or(|(_, p)| *p != port) {
            self.engine = None;
            let listen = SocketAddr::new(ip, port);
            let engine = Engine::start(EngineConfig::new(node_id, listen))
                .map_err(|e| anyhow::anyhow!("starting the overlay engine on {listen}: {e}"))?;
            tracing::info!(%listen, "overlay engine started");
            self.engine = Some((engine, port));
        }
        Ok(&self.engine.as_ref().expect("just started").0)
    }
}
