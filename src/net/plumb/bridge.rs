//! A network's bridge, and the overlay engine's TAP as its port.

use std::io;

use futures::TryStreamExt;
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec};

use super::link::{self, disable_ipv6, to_io};
use super::{PlumbError, Plumber, Result};
use crate::net::routes::NetworkInfo;

impl Plumber {
    /// Makes sure the network's bridge exists, with the network's MTU, up, without addresses
    /// and with IPv6 off; and, if the overlay engine has made the network's TAP (or the daemon's
    /// stack its own), that the TAP is a port of the bridge and up. Idempotent: call it on every route-table change.
    pub async fn ensure_network(&self, info: &NetworkInfo) -> Result<()> {
        let name = info.bridge_name();
        let fail = |what: &str| {
            let operation = format!("{what} bridge {name} of network {}", info.name);
            move |e| PlumbError::new(operation, e)
        };
        if link::find(&self.handle, &name)
            .await
            .map_err(fail("looking up"))?
            .is_none()
        {
            // Down until IPv6 is off, so that it never starts.
            let create = LinkMessageBuilder::<LinkBridge>::new(&name)
                .mtu(info.mtu.into())
                .build();
            match self
                .handle
                .link()
                .add(create)
                .execute()
                .await
                .map_err(to_io)
            {
                // Made meanwhile by a concurrent call: as good.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                other => other.map_err(fail("creating"))?,
            }
        }
        let bridge = link::find(&self.handle, &name)
            .await
            .and_then(|found| found.ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV)))
            .map_err(fail("looking up"))?;
        disable_ipv6(&name).map_err(fail("turning IPv6 off on"))?;
        self.remove_addresses(bridge.index)
            .await
            .map_err(fail("removing addresses from"))?;
        let configure = LinkUnspec::new_with_index(bridge.index)
            .mtu(info.mtu.into())
            .up()
            .build();
        link::set(&self.handle, configure)
            .await
            .map_err(fail("setting the MTU and up on"))?;

        // The engine's TAP, and the TAPs of the daemon's own stacks where it has them (the
        // routing mesh's, the VIP balancer's).
        for tap in [
            info.tap_name(),
            info.stack_tap_name(),
            info.balancer_tap_name(),
        ] {
            let fail_tap = |e| {
                let operation = format!("adding TAP {tap} to bridge {name}");
                PlumbError::new(operation, e)
            };
            if link::find(&self.handle, &tap)
                .await
                .map_err(fail_tap)?
                .is_some()
            {
                let port = LinkUnspec::new_with_name(&tap)
                    .controller(bridge.index)
                    .up()
                    .build();
                match link::set(&self.handle, port).await {
                    // Closed meanwhile by its owner (the mesh or balancer left the network).
                    Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
                    other => other.map_err(fail_tap)?,
                }
            }
        }
        Ok(())
    }

    /// Deletes the network's bridge (its ports are released, not deleted); an absent bridge is
    /// not an error.
    pub async fn remove_network(&self, info: &NetworkInfo) -> Result<()> {
        let name = info.bridge_name();
        link::delete(&self.handle, &name).await.map_err(|e| {
            PlumbError::new(
                format!("deleting bridge {name} of network {}", info.name),
                e,
            )
        })
    }

    /// Removes every address from the link with `index` (a bridge is a switch here, not a host:
    /// the daemon's own presence on the overlay is its userspace stack behind the TAP).
    async fn remove_addresses(&self, index: u32) -> io::Result<()> {
        let addresses: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(to_io)?;
        for address in addresses {
            self.handle
                .address()
                .del(address)
                .execute()
                .await
                .map_err(to_io)?;
        }
        Ok(())
    }
}
