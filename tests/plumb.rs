//! Plumbing against the real kernel, as root, in a sandbox (see `sandbox`): a network's bridge
//! with a stand-in for the overlay engine's TAP, two task namespaces attached to it, and a ping
//! between them through the bridge. Skipped, with a note, without root.

mod sandbox;

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnetwork::Ipv4Network;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkVeth};
use shoal::net::plumb::{Attachment, NetnsFile, Plumber, veth_name};
use shoal::net::routes::{NetworkInfo, mac_for};
use socket2::{Domain, Protocol, Socket, Type};

/// A guard against hangs, not a timing assertion: a ping through a bridge takes microseconds.
const PATIENCE: Duration = Duration::from_secs(10);

fn network() -> NetworkInfo {
    NetworkInfo {
        id: "n1".into(),
        name: "plumbnet".into(),
        vni: 4097,
        subnet: "10.0.9.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 0, 9, 1),
        mtu: 1450,
    }
}

fn attachment(task_id: &str, address: &str) -> Attachment {
    Attachment {
        task_id: task_id.into(),
        ifname: "eth0".into(),
        network: network(),
        address: address.parse().unwrap(),
        default_route: true,
    }
}

async fn link(handle: &Handle, name: &str) -> Option<LinkMessage> {
    let mut links = handle.link().get().match_name(name).execute();
    links.try_next().await.ok().flatten()
}

fn mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(mtu) => Some(*mtu),
        _ => None,
    })
}

fn controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(index) => Some(*index),
        _ => None,
    })
}

fn mac(link: &LinkMessage) -> Option<Vec<u8>> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(mac) => Some(mac.clone()),
        _ => None,
    })
}

fn is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

/// The IPv4 addresses (with prefix) on the link with `index`.
async fn addresses(handle: &Handle, index: u32) -> Vec<Ipv4Network> {
    let messages: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .unwrap();
    messages
        .iter()
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(std::net::IpAddr::V4(ip)) => {
                    Some(Ipv4Network::new(*ip, m.header.prefix_len).unwrap())
                }
                _ => None,
            })
        })
        .collect()
}

/// The gateway and output interface of the IPv4 default route.
async fn default_route(handle: &Handle) -> Option<(Ipv4Addr, u32)> {
    let routes: Vec<_> = handle
        .route()
        .get(rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .unwrap();
    routes
        .iter()
        .filter(|r| r.header.destination_prefix_length == 0)
        .find_map(|r| {
            let gateway = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            })?;
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })?;
            Some((gateway, oif))
        })
}

/// Sends ICMP echo requests to `to` from inside the namespace at `netns` until a reply comes or
/// `patience` has passed.
fn ping(netns: &Path, to: Ipv4Addr, patience: Duration) -> Result<(), String> {
    sandbox::in_netns(netns, || {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let id = 0x5348u16;
        let mut request = [
            8u8,
            0,
            0,
            0,
            (id >> 8) as u8,
            id as u8,
            0,
            1,
            b'p',
            b'i',
            b'n',
            b'g',
        ];
        let sum = checksum(&request);
        request[2..4].copy_from_slice(&sum.to_be_bytes());
        let target = SocketAddr::V4(SocketAddrV4::new(to, 0));
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            // Resent now and then: the first may go while ARP is still being resolved.
            socket.send_to(&request, &target.into()).unwrap();
            let mut buffer = [MaybeUninit::<u8>::uninit(); 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buffer) {
                // SAFETY: recv_from initialised the first n bytes.
                let packet: Vec<u8> = buffer[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                let header = usize::from(packet[0] & 0x0f) * 4;
                let icmp = &packet[header..];
                let reply = icmp[0] == 0 && icmp[4..6] == id.to_be_bytes();
                if reply && from.as_socket_ipv4().map(|a| *a.ip()) == Some(to) {
                    return Ok(());
                }
            }
        }
        Err(format!("no echo reply from {to}"))
    })
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn two_tasks_on_a_bridge_ping_each_other() {
    if !sandbox::have_root("two_tasks_on_a_bridge_ping_each_other") {
        return;
    }
    sandbox::run(|scratch| async move {
        let info = network();
        let (connection, host, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(connection);
        // The overlay engine's TAP, stood in for by one end of a veth pair (the lab kernel has
        // no dummy devices), made before the bridge.
        host.link()
            .add(LinkVeth::new(&info.tap_name(), "shtpeer").build())
            .execute()
            .await
            .unwrap();

        let plumber = Plumber::new().unwrap();
        plumber.ensure_network(&info).await.unwrap();
        plumber.ensure_network(&info).await.unwrap();
        let bridge = link(&host, &info.bridge_name()).await.expect("no bridge");
        assert_eq!(mtu(&bridge), Some(1450));
        assert!(is_up(&bridge));
        assert!(addresses(&host, bridge.header.index).await.is_empty());
        let tap = link(&host, &info.tap_name()).await.unwrap();
        assert_eq!(controller(&tap), Some(bridge.header.index));
        assert!(is_up(&tap));

        let ns_a = NetnsFile::create(&scratch.join("shoalp-a")).unwrap();
        let ns_b = NetnsFile::create(&scratch.join("shoalp-b")).unwrap();
        let (a, b) = (
            attachment("task-a", "10.0.9.2/24"),
            attachment("task-b", "10.0.9.3/24"),
        );
        plumber.attach(ns_a.path(), &a).await.unwrap();
        plumber.attach(ns_b.path(), &b).await.unwrap();
        // Again, as after a daemon restart: nothing changes, nothing fails.
        plumber.attach(ns_a.path(), &a).await.unwrap();

        for (ns, attachment) in [(&ns_a, &a), (&ns_b, &b)] {
            let host_end = link(&host, &veth_name(&attachment.task_id, info.vni))
                .await
                .expect("no host end");
            assert_eq!(controller(&host_end), Some(bridge.header.index));
            assert_eq!(mtu(&host_end), Some(1450));
            assert!(is_up(&host_end));

            let inside = sandbox::netlink_in(ns.path());
            let eth0 = link(&inside, "eth0").await.expect("no eth0 inside");
            assert_eq!(mtu(&eth0), Some(1450));
            assert_eq!(mac(&eth0), Some(mac_for(attachment.address.ip()).to_vec()));
            assert!(is_up(&eth0));
            assert_eq!(
                addresses(&inside, eth0.header.index).await,
                [attachment.address]
            );
            assert_eq!(
                default_route(&inside).await,
                Some((info.gateway, eth0.header.index))
            );
            assert!(is_up(&link(&inside, "lo").await.unwrap()));
        }

        ping(ns_a.path(), Ipv4Addr::new(10, 0, 9, 3), PATIENCE).unwrap();
        ping(ns_b.path(), Ipv4Addr::new(10, 0, 9, 2), PATIENCE).unwrap();

        plumber.detach("task-a", &info).await.unwrap();
        plumber.detach("task-a", &info).await.unwrap();
        assert!(link(&host, &veth_name("task-a", info.vni)).await.is_none());
        assert!(
            link(&sandbox::netlink_in(ns_a.path()), "eth0")
                .await
                .is_none()
        );
        // Task a is off the bridge now.
        ping(
            ns_b.path(),
            Ipv4Addr::new(10, 0, 9, 2),
            Duration::from_millis(500),
        )
        .unwrap_err();

        plumber.remove_network(&info).await.unwrap();
        plumber.remove_network(&info).await.unwrap();
        assert!(link(&host, &info.bridge_name()).await.is_none());
        // The TAP is the engine's: released, not deleted.
        let tap = link(&host, &info.tap_name()).await.unwrap();
        assert_eq!(controller(&tap), None);

        for ns in [&ns_a, &ns_b] {
            NetnsFile::remove(ns.path()).unwrap();
            NetnsFile::remove(ns.path()).unwrap();
            assert!(!ns.path().exists());
        }
    });
}

#[test]
fn a_namespace_file_is_its_own_namespace_and_cannot_be_made_twice() {
    if !sandbox::have_root("a_namespace_file_is_its_own_namespace_and_cannot_be_made_twice") {
        return;
    }
    sandbox::run(|scratch| async move {
        let path = scratch.join("shoalp-x");
        let ns = NetnsFile::create(&path).unwrap();
        let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let inside = sandbox::in_netns(ns.path(), || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        });
        assert_ne!(own, inside);
        let again = NetnsFile::create(&path).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        NetnsFile::remove(&path).unwrap();
        assert!(!path.exists());
    });
}
