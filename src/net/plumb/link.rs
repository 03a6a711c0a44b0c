//! Link lookups and changes shared by the bridge and the veth code, on any rtnetlink handle (the
//! host's, or one opened inside a task's namespace), with netlink errors as `io::Error`s.

use std::io;

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

/// What the plumbing needs to know of an existing link.
pub(super) struct Link {
    /// Its interface index.
    pub(super) index: u32,
    /// For a veth, the peer's index (in the peer's namespace).
    pub(super) peer: Option<u32>,
    /// Its MAC address.
    pub(super) mac: Option<Vec<u8>>,
}

impl From<LinkMessage> for Link {
    fn from(message: LinkMessage) -> Link {
        let mut link = Link {
            index: message.header.index,
            peer: None,
            mac: None,
        };
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::Link(peer) => link.peer = Some(peer),
                LinkAttribute::Address(mac) => link.mac = Some(mac),
                _ => {}
            }
        }
        link
    }
}

/// The link called `name`, if there is one.
pub(super) async fn find(handle: &Handle, name: &str) -> io::Result<Option<Link>> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await.map_err(to_io) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        other => Ok(other?.map(Link::from)),
    }
}

/// Applies `message` (RTM_SETLINK) to the link it names.
pub(super) async fn set(handle: &Handle, message: LinkMessage) -> io::Result<()> {
    handle.link().set(message).execute().await.map_err(to_io)
}

/// Deletes the link called `name`; an absent link is not an error.
pub(super) async fn delete(handle: &Handle, name: &str) -> io::Result<()> {
    let Some(link) = find(handle, name).await? else {
        return Ok(());
    };
    match handle.link().del(link.index).execute().await.map_err(to_io) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        other => other,
    }
}

/// Turns IPv6 off on `device` in the current thread's network namespace, so that it sends no
/// router solicitations, DAD or MLD onto an IPv4-only overlay. A kernel without IPv6 has
/// nothing to turn off.
pub(super) fn disable_ipv6(device: &str) -> io::Result<()> {
    match std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{device}/disable_ipv6"),
        "1",
    ) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A netlink error as the errno the kernel returned, so that it reads as "File exists" and can
/// be matched on; other rtnetlink failures keep their own wording.
pub(super) fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) if message.code.is_some() => {
            io::Error::from_raw_os_error(-message.raw_code())
        }
        other => io::Error::other(other.to_string()),
    }
}
