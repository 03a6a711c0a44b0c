//! The VIP balancer without root: its stack's device one end of a socket pair, and on the other
//! end a smoltcp stack standing for the network's tasks (tests/support/smol_backend.rs): a
//! client at 10.0.0.20 and echoing backends. Checks TCP through a VIP to the same port of a
//! backend, the spread over backends, retries past a backend that refuses, a service without
//! tasks, UDP through a VIP, which ARP requests the balancer answers, and DNS on the gateway:
//! cluster names answered there (over UDP and TCP), other names forwarded to the node's
//! resolver (a UDP socket on loopback); and frames for a task on another node sent to that node
//! as VXLAN.

#[path = "support/smol_backend.rs"]
#[allow(dead_code)] // the mesh's part
mod smol_backend;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use shoal::net::balancer::Balancer;
use shoal::net::mesh::DirectConfig;
use shoal::net::routes::{
    Endpoint, NetworkInfo, NetworkRoutes, RouteTable, ServiceRoutes, mac_for,
};
use shoal::net::stack::FrameFd;
use smol_backend::{Backends, PairOpener, backend, ingress};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

/// The port the services listen on, and their VIPs take.
const PORT: u16 = 5432;
/// The client task's address.
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);
/// The service's VIP.
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// This node's balancer address.
const BALANCER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

/// The test's overlay: the backends' network (10.0.0.0/24, gateway 10.0.0.1).
fn network() -> NetworkInfo {
    NetworkInfo {
        id: "overlay".into(),
        name: "overlay".into(),
        ..ingress()
    }
}

/// A table with one service (VIP 10.0.0.100) whose tasks are at 10.0.0.`last`.
fn table(tasks: &[u8]) -> Arc<RouteTable> {
    let info = network();
    let service = ServiceRoutes {
        name: "db".into(),
        aliases: vec!["database".into()],
        vip: Some(VIP),
        tasks: tasks.iter().map(|last| backend(*last)).collect(),
    };
    let mut table = RouteTable::default();
    table.balancers.insert(info.id.clone(), BALANCER);
    table.networks.insert(
        info.id.clone(),
        NetworkRoutes {
            info,
            endpoints: BTreeMap::new(),
            services: BTreeMap::from([("svc".to_string(), service)]),
        },
    );
    Arc::new(table)
}

/// A balancer given `first`, and the far end of its device; it sends queries for names outside
/// the cluster to `resolver`.
fn balancer_asking(first: &Arc<RouteTable>, resolver: SocketAddr) -> (Balancer, FrameFd) {
    balancer_with(first, resolver, None, 4789)
}

/// A balancer given `first` (other nodes' data port: `data_port`), and the far end of its
/// device; it sends queries for names outside the cluster to `resolver`, and frames for other
/// nodes as `direct` says.
fn balancer_with(
    first: &Arc<RouteTable>,
    resolver: SocketAddr,
    direct: Option<DirectConfig>,
    data_port: u16,
) -> (Balancer, FrameFd) {
    let opener = PairOpener {
        far_end: Arc::default(),
        vnet_header: false,
    };
    let far_end = opener.far_end.clone();
    let balancer = Balancer::start_with(opener, vec![resolver], direct).unwrap();
    balancer.install(first.clone(), data_port).unwrap();
    let link = far_end.lock().unwrap().take().expect("a device was opened");
    (balancer, link)
}

/// A balancer given `first` (with no resolver to forward to), and the far end of its device.
fn balancer(first: &Arc<RouteTable>) -> (Balancer, FrameFd) {
    // A port of loopback nothing answers on.
    let nobody = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    balancer_asking(first, nobody.local_addr().unwrap())
}

/// A balancer given `first`, with the client and backends at 10.0.0.x, `(last byte,
/// listens)`, behind its device.
fn balancer_with_backends(
    first: &Arc<RouteTable>,
    backends: &[(u8, bool)],
) -> (Balancer, Backends) {
    let (balancer, link) = balancer(first);
    (balancer, tasks(link, backends))
}

/// The client and backends at 10.0.0.x, `(last byte, listens)`, on `link`.
fn tasks(link: FrameFd, backends: &[(u8, bool)]) -> Backends {
    let addresses: Vec<(Ipv4Addr, bool)> = [(CLIENT, false)]
        .into_iter()
        .chain(
            backends
                .iter()
                .map(|(last, listens)| (Ipv4Addr::new(10, 0, 0, *last), *listens)),
        )
        .collect();
    Backends::start(link, &addresses, PORT)
}

/// What comes back from the VIP for `data`.
fn through_the_vip(backends: &Backends, data: Vec<u8>) -> Vec<u8> {
    backends
        .dial(CLIENT, SocketAddrV4::new(VIP, PORT), data)
        .recv_timeout(Duration::from_secs(30))
        .expect("the connection ended")
}

#[test]
fn a_megabyte_goes_through_a_vip_to_the_same_port_of_a_task_and_back() {
    let (balancer, backends) = balancer_with_backends(&table(&[5]), &[(5, true)]);
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    assert!(
        through_the_vip(&backends, data.clone()) == data,
        "the echo differs"
    );
    let counters = balancer.counters();
    assert_eq!((counters.connections, counters.connect_failures), (1, 0));
}

#[test]
fn connections_spread_over_the_tasks() {
    let (_balancer, backends) = balancer_with_backends(&table(&[5, 6]), &[(5, true), (6, true)]);
    for i in 0..20u8 {
        assert_eq!(through_the_vip(&backends, vec![i; 100]), [i; 100]);
    }
    // The backends count a connection once its socket listens again.
    std::thread::sleep(Duration::from_millis(200));
    let served = backends.served();
    let on = |last| served.get(&Ipv4Addr::new(10, 0, 0, last)).copied();
    assert!(on(5) > Some(2) && on(6) > Some(2), "{served:?}");
}

#[test]
fn a_refusing_task_is_skipped_for_the_next_one() {
    let (balancer, backends) = balancer_with_backends(&table(&[5, 6]), &[(5, false), (6, true)]);
    for i in 0..20u8 {
        assert_eq!(through_the_vip(&backends, vec![i; 100]), [i; 100]);
    }
    let counters = balancer.counters();
    assert_eq!(counters.connections, 20);
    assert!(counters.connect_retries > 0, "{counters:?}");
    assert_eq!(counters.connect_failures, 0);
}

#[test]
fn a_service_without_tasks_resets_its_connections() {
    let (balancer, backends) = balancer_with_backends(&table(&[]), &[(5, true)]);
    assert!(through_the_vip(&backends, b"hello".to_vec()).is_empty());
    assert_eq!(balancer.counters().no_backend, 1);
}

#[test]
fn arp_is_answered_for_the_vip_the_gateway_and_the_balancer_but_not_for_tasks() {
    let (_balancer, link) = balancer(&table(&[5]));
    let gateway = network().gateway;
    for (asked, answered) in [
        (VIP, true),
        (gateway, true),
        (BALANCER, true),
        (Ipv4Addr::new(10, 0, 0, 5), false),
        (CLIENT, false),
    ] {
        let reply = ask(&link, asked);
        match reply {
            Some(mac) => {
                assert!(answered, "the balancer answered for {asked}");
                assert_eq!(mac, mac_for(asked), "{asked} has its own MAC");
            }
            None => assert!(!answered, "no answer for {asked}"),
        }
    }
}

/// Sends an ARP request for `target` from the client on `link`: the MAC of the answer, if one
/// comes within half a second.
fn ask(link: &FrameFd, target: Ipv4Addr) -> Option<[u8; 6]> {
    let mut frame = [0u8; 14 + 28];
    let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
    EthernetRepr {
        src_addr: EthernetAddress(mac_for(CLIENT)),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut ethernet);
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac_for(CLIENT)),
        source_protocol_addr: CLIENT,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    }
    .emit(&mut ArpPacket::new_unchecked(ethernet.payload_mut()));
    let fd = link.fd.as_raw_fd();
    // SAFETY: the frame is valid for reads of its length; the descriptor is open.
    let written = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
    assert_eq!(written, frame.len() as isize);
    let mut reply = [0u8; 1514];
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut pollfd, 1, 500) } != 1 {
        return None;
    }
    // SAFETY: the buffer is valid for writes of its length.
    let n = unsafe { libc::read(fd, reply.as_mut_ptr().cast(), reply.len()) };
    let ethernet = EthernetFrame::new_checked(&reply[..n.max(0) as usize]).ok()?;
    let arp = ArpRepr::parse(&ArpPacket::new_checked(ethernet.payload()).ok()?).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr,
        source_protocol_addr,
        ..
    } = arp
    else {
        return None;
    };
    assert_eq!(source_protocol_addr, target);
    assert_eq!(ethernet.src_addr(), source_hardware_addr);
    Some(source_hardware_addr.0)
}

/// A DNS query for `name` (type A), recursion desired.
fn dns_query(name: &str) -> Vec<u8> {
    let mut message = Message::new();
    message
        .set_id(0x4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    message.to_vec().unwrap()
}

/// The reply to `query` sent to the gateway's port 53 from the client.
fn ask_the_gateway(backends: &Backends, query: Vec<u8>) -> Message {
    let gateway = SocketAddrV4::new(network().gateway, 53);
    let reply = backends
        .ask(CLIENT, gateway, query)
        .recv_timeout(Duration::from_secs(10))
        .expect("the gateway answered");
    Message::from_vec(&reply).unwrap()
}

#[test]
fn the_gateway_answers_a_service_name_with_its_vip() {
    let (balancer, backends) = balancer_with_backends(&table(&[5]), &[(5, true)]);
    for name in ["db.", "database."] {
        let reply = ask_the_gateway(&backends, dns_query(name));
        assert_eq!(reply.id(), 0x4242);
        let addresses: Vec<RData> = reply.answers().iter().map(|r| r.data().clone()).collect();
        assert_eq!(addresses, [RData::A(VIP.into())], "{name}");
    }
    assert_eq!(balancer.counters().dns_queries, 2);
}

#[test]
fn other_names_go_to_the_node_resolver_and_back() {
    let resolver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    resolver
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (balancer, link) = balancer_asking(&table(&[5]), resolver.local_addr().unwrap());
    let backends = tasks(link, &[(5, true)]);
    let reply = std::thread::spawn(move || ask_the_gateway(&backends, dns_query("example.com.")));
    // The resolver answers as a resolver would: the query, turned into a response.
    let mut datagram = [0u8; 512];
    let (n, forwarder) = resolver.recv_from(&mut datagram).unwrap();
    let mut response = Message::from_vec(&datagram[..n]).unwrap();
    response
        .set_message_type(MessageType::Response)
        .set_response_code(ResponseCode::NXDomain);
    resolver
        .send_to(&response.to_vec().unwrap(), forwarder)
        .unwrap();
    let reply = reply.join().unwrap();
    assert_eq!(reply.id(), 0x4242, "the client's ID is given back");
    assert_eq!(reply.response_code(), ResponseCode::NXDomain);
    assert_eq!(balancer.counters().dns_forwarded, 1);
}

#[test]
fn datagrams_to_a_vip_reach_a_task_on_the_same_port_and_come_back() {
    let (balancer, backends) = balancer_with_backends(&table(&[5, 6]), &[(5, true), (6, true)]);
    for i in 0..3u8 {
        let echo = backends
            .ask(CLIENT, SocketAddrV4::new(VIP, PORT), vec![i; 300])
            .recv_timeout(Duration::from_secs(10))
            .expect("the echo came back");
        assert_eq!(echo, [i; 300]);
    }
    // Each datagram came from a port of its own: a flow each.
    assert_eq!(balancer.counters().udp_flows, 3);
}

#[test]
fn the_gateway_answers_over_tcp_too() {
    let (_balancer, backends) = balancer_with_backends(&table(&[5]), &[(5, true)]);
    let query = dns_query("db.");
    // Two queries on one connection, each after its length.
    let mut framed = Vec::new();
    for _ in 0..2 {
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(&query);
    }
    let gateway = SocketAddrV4::new(network().gateway, 53);
    let mut received = backends
        .dial(CLIENT, gateway, framed)
        .recv_timeout(Duration::from_secs(10))
        .expect("the session ended");
    for _ in 0..2 {
        assert!(received.len() > 2, "{received:?}");
        let len = usize::from(u16::from_be_bytes([received[0], received[1]]));
        let reply = Message::from_vec(&received[2..2 + len]).unwrap();
        let addresses: Vec<RData> = reply.answers().iter().map(|r| r.data().clone()).collect();
        assert_eq!(addresses, [RData::A(VIP.into())]);
        received.drain(..2 + len);
    }
    assert!(received.is_empty());
}

#[test]
fn frames_for_a_task_on_another_node_go_to_that_node_as_vxlan() {
    // The "other node" is a UDP socket on loopback standing for its overlay engine; the table
    // says the client runs there (its frames still come through the device, as if flooded),
    // so what the balancer sends it goes there.
    let other_node = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    other_node
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let data_port = other_node.local_addr().unwrap().port();
    let mut remote = (*table(&[5])).clone();
    let overlay = remote.networks.get_mut("overlay").unwrap();
    overlay
        .endpoints
        .insert(CLIENT, Endpoint::new(CLIENT, "other", "client", "cl"));
    remote
        .nodes
        .insert("other".into(), Ipv4Addr::LOCALHOST.into());
    let direct = DirectConfig {
        local_node: "this".into(),
        underlay: Ipv4Addr::LOCALHOST.into(),
    };
    let nobody = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let resolver = nobody.local_addr().unwrap();
    let (_balancer, link) = balancer_with(&Arc::new(remote), resolver, Some(direct), data_port);
    let backends = tasks(link, &[(5, true)]);
    let _connection = backends.dial(CLIENT, SocketAddrV4::new(VIP, PORT), b"hello".to_vec());
    // The balancer's answer to the client's ARP request for the VIP goes to the client's node.
    let mut datagram = [0u8; 2048];
    let (n, from) = other_node.recv_from(&mut datagram).unwrap();
    assert_eq!(from.ip(), Ipv4Addr::LOCALHOST, "from this node's underlay");
    assert_eq!(
        datagram[..8],
        [0x08, 0, 0, 0, 0, 0x10, 0, 0],
        "VXLAN, VNI 4096"
    );
    let frame = &datagram[8..n];
    assert_eq!(frame[..6], mac_for(CLIENT), "to the client's MAC");
    assert_eq!(frame[6..12], mac_for(VIP), "from the VIP's");
    assert_eq!(frame[12..14], [0x08, 0x06], "ARP");
    assert_eq!(
        frame[14 + 8..14 + 14],
        mac_for(VIP),
        "the VIP is at its own MAC"
    );
}
