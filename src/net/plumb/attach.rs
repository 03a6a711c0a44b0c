//! Attaching a task's network namespace to a network: a veth pair from the namespace to the
//! network's bridge, and the task's address, MAC address and default route inside.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use ipnetwork::Ipv4Network;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use sha2::{Digest, Sha256};

use super::link::{self, Link, disable_ipv6, to_io};
use super::netns::{NetnsHandle, in_netns};
use super::{PlumbError, Plumber, Result};
use crate::net::routes::{NetworkInfo, mac_for};

/// One of a task's network interfaces: the task's end of a veth pair whose other end is a port
/// of the network's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The task, which (with the network's VNI) names the host end ([`veth_name`]).
    pub task_id: String,
    /// The interface's name inside the task's namespace: `eth0`, `eth1`, ...
    pub ifname: String,
    /// The network.
    pub network: NetworkInfo,
    /// The task's address on the network, with the network's prefix length.
    pub address: Ipv4Network,
    /// Whether the task's default route goes through this network's gateway.
    pub default_route: bool,
}

/// The name of the host end of a task's veth on the network with `vni`: `shv` and 10 hex
/// digits of a hash of both (13 bytes, within the 15 Linux allows), the same on every call, so
/// that a restarted daemon finds it again.
pub fn veth_name(task_id: &str, vni: u32) -> String {
    let digest = Sha256::new()
        .chain_update(task_id.as_bytes())
        .chain_update([0])
        .chain_update(vni.to_be_bytes())
        .finalize();
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("shv{hex}")
}

impl Plumber {
    /// Attaches the network namespace at `netns` (a [`super::NetnsFile`] or `/proc/<pid>/ns/net`)
    /// to `a.network`: makes sure of the network's bridge ([`Plumber::ensure_network`]); creates
    /// a veth pair whose host end ([`veth_name`]) is a port of the bridge and whose other end is
    /// born inside the namespace as `a.ifname`, both with the network's MTU; inside, gives that
    /// end the MAC address [`mac_for`] the address, the address, IPv6 off, up, `lo` up and, if
    /// `a.default_route`, a default route through the network's gateway.
    ///
    /// Idempotent: when the host end exists already and its peer is `a.ifname` in that
    /// namespace (a re-run, say after a daemon restart), the rest is re-applied; a host end left
    /// over from another namespace is replaced.
    pub async fn attach(&self, netns: &Path, a: &Attachment) -> Result<()> {
        self.ensure_network(&a.network).await?;
        let host = veth_name(&a.task_id, a.network.vni);
        let context = format!(
            "veth {host} for task {} ({} in {})",
            a.task_id,
            a.ifname,
            netns.display()
        );
        let fail = |what: &str| {
            let operation = format!("{what} {context}");
            move |e| PlumbError::new(operation, e)
        };
        let inside = NetnsHandle::open(netns).map_err(fail("entering the namespace of"))?;
        let bridge_name = a.network.bridge_name();
        let bridge = link::find(&self.handle, &bridge_name)
            .await
            .and_then(|found| found.ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV)))
            .map_err(fail(&format!("looking up bridge {bridge_name} for")))?;

        let existing = link::find(&self.handle, &host)
            .await
            .map_err(fail("looking up"))?;
        let ours = match &existing {
            Some(host_end) => self
                .is_pair(host_end, &inside, &a.ifname)
                .await
                .map_err(fail("checking"))?,
            None => false,
        };
        if !ours {
            if existing.is_some() {
                link::delete(&self.handle, &host)
                    .await
                    .map_err(fail("deleting the stale"))?;
            }
            self.create_veth(&host, netns, a)
                .await
                .map_err(fail("creating"))?;
        }

        disable_ipv6(&host).map_err(fail("turning IPv6 off on"))?;
        let port = LinkUnspec::new_with_name(&host)
            .controller(bridge.index)
            .mtu(a.network.mtu.into())
            .up()
            .build();
        link::set(&self.handle, port)
            .await
            .map_err(fail("adding to the bridge"))?;
        configure_inside(&inside, netns, a)
            .await
            .map_err(fail("configuring the task's end of"))
    }

    /// Detaches the task from the network: deletes the host end of its veth if it is still
    /// there (its peer goes with it; once the namespace is gone, both are gone anyway).
    pub async fn detach(&self, task_id: &str, info: &NetworkInfo) -> Result<()> {
        let host = veth_name(task_id, info.vni);
        link::delete(&self.handle, &host)
            .await
            .map_err(|e| PlumbError::new(format!("deleting veth {host} of task {task_id}"), e))
    }

    /// Whether `host_end` and the link `ifname` inside the namespace are the two ends of one
    /// veth pair (each names the other's index as its peer).
    async fn is_pair(
        &self,
        host_end: &Link,
        inside: &NetnsHandle,
        ifname: &str,
    ) -> io::Result<bool> {
        let Some(task_end) = link::find(&inside.handle, ifname).await? else {
            return Ok(false);
        };
        Ok(host_end.peer == Some(task_end.index) && task_end.peer == Some(host_end.index))
    }

    /// Creates the pair, its task end directly inside the namespace with its final name, MTU
    /// and MAC address; both ends down (IPv6 is turned off before they go up).
    async fn create_veth(&self, host: &str, netns: &Path, a: &Attachment) -> io::Result<()> {
        let ns = File::open(netns)?;
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(a.ifname.clone())
            .mtu(a.network.mtu.into())
            .address(mac_for(a.address.ip()).to_vec())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let pair = LinkVeth::new(host, &a.ifname)
            .mtu(a.network.mtu.into())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle.link().add(pair).execute().await.map_err(to_io)
    }
}

/// Inside the namespace: the task end's MAC address, IPv6 off, MTU, up; its address; `lo` up;
/// the default route if wanted. Each step leaves what is already right as it is.
async fn configure_inside(inside: &NetnsHandle, netns: &Path, a: &Attachment) -> io::Result<()> {
    let handle = &inside.handle;
    let task_end = link::find(handle, &a.ifname)
        .await?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
    let ifname = a.ifname.clone();
    in_netns(netns, || disable_ipv6(&ifname))?;
    let mac = mac_for(a.address.ip()).to_vec();
    let mut configure = LinkUnspec::new_with_index(task_end.index)
        .mtu(a.network.mtu.into())
        .up();
    // Only when it differs: a MAC address may not be changeable while the link is up.
    if task_end.mac.as_ref() != Some(&mac) {
        configure = configure.address(mac);
    }
    link::set(handle, configure.build()).await?;
    handle
        .address()
        .add(
            task_end.index,
            IpAddr::V4(a.address.ip()),
            a.address.prefix(),
        )
        .replace()
        .execute()
        .await
        .map_err(to_io)?;
    link::set(handle, LinkUnspec::new_with_name("lo").up().build()).await?;
    if a.default_route {
        let route = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway(a.network.gateway)
            .output_interface(task_end.index)
            .build();
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(to_io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_short_stable_and_distinct() {
        let name = veth_name("x1y2z3abcdefghijklmnopqrs", 4097);
        assert_eq!(name.len(), 13);
        assert!(name.starts_with("shv"));
        assert!(name[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(name, veth_name("x1y2z3abcdefghijklmnopqrs", 4097));
        assert_ne!(name, veth_name("x1y2z3abcdefghijklmnopqrs", 4098));
        assert_ne!(name, veth_name("x1y2z3abcdefghijklmnopqrt", 4097));
    }
}
