//! The routing mesh without root: a mesh listening on loopback, its stack's device one end of a
//! socket pair, and echoing smoltcp backends on the other end (tests/support/smol_backend.rs).
//! Checks TCP and UDP through the mesh, retries past a backend that refuses, the PROXY v2
//! header, a port with no backend, closing a port, and frames for a backend on another node
//! sent straight to that node as VXLAN.

#[path = "support/smol_backend.rs"]
mod smol_backend;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use shoal::net::mesh::{DirectConfig, MeshConfig};
use shoal::net::routes::Endpoint;
use shoal::net::routes::{PortKey, Protocol};
use smol_backend::{LOOPBACK, free_port, mesh_with_backends, mesh_with_config, table};

fn tcp(port: u16) -> PortKey {
    PortKey {
        protocol: Protocol::Tcp,
        port,
    }
}

/// Connects to the published port, retrying while the mesh thread has not bound it yet.
fn connect(port: u16) -> TcpStream {
    for _ in 0..200 {
        if let Ok(stream) = TcpStream::connect((LOOPBACK, port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            return stream;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("port {port} was never published");
}

/// Sends `data` and reads as much back.
fn echo(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sent = data.to_vec();
    let sender = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0; data.len()];
    stream.read_exact(&mut back).unwrap();
    sender.join().unwrap();
    back
}

#[test]
fn a_megabyte_goes_through_the_mesh_and_back() {
    let port = free_port();
    let table = table(&[(tcp(port), &[5], false)]);
    let (mesh, _backends) = mesh_with_backends(&[(5, true)], &table);
    megabyte_echo(port);
    assert_eq!(mesh.counters().connections, 1);
}

#[test]
fn a_megabyte_goes_through_in_super_frames_behind_virtio_net_headers() {
    let port = free_port();
    let config = MeshConfig {
        listen: LOOPBACK,
        direct: None,
    };
    let table = table(&[(tcp(port), &[5], false)]);
    let (mesh, _backends) = mesh_with_config(config, &[(5, true)], &table, 4789, true);
    megabyte_echo(port);
    // Every super-frame fits the device (a full socket buffer may drop some; TCP resends them).
    let counters = mesh.counters();
    assert_eq!(
        (counters.device_read_failed, counters.device_write_failed),
        (0, 0)
    );
}

/// Echoes 1 MiB through the mesh, then ends the connection from the client's side.
fn megabyte_echo(port: u16) {
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut stream = connect(port);
    assert!(echo(&mut stream, &data) == data, "the echo differs");
    // The client's end reaches the backend, whose end comes back.
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn a_refusing_backend_is_skipped_for_the_next_one() {
    let port = free_port();
    let table = table(&[(tcp(port), &[5, 6], false)]);
    let (mesh, _backends) = mesh_with_backends(&[(5, false), (6, true)], &table);
    for i in 0..20u8 {
        let mut stream = connect(port);
        assert_eq!(echo(&mut stream, &[i; 100]), [i; 100]);
    }
    let counters = mesh.counters();
    assert_eq!(counters.connections, 20);
    assert!(counters.connect_retries > 0, "{counters:?}");
    assert_eq!(counters.connect_failures, 0);
}

#[test]
fn the_backend_learns_the_client_from_a_proxy_v2_header() {
    let port = free_port();
    let table = table(&[(tcp(port), &[5], true)]);
    let (_mesh, _backends) = mesh_with_backends(&[(5, true)], &table);
    let mut stream = connect(port);
    let client = stream.local_addr().unwrap();
    // The echo returns what the backend received: the header, then the client's bytes.
    let back = echo(&mut stream, b"hello");
    let mut all = back;
    let mut rest = [0u8; 28];
    stream.read_exact(&mut rest).unwrap();
    all.extend_from_slice(&rest);
    assert_eq!(&all[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(all[12..16], [0x21, 0x11, 0, 12]);
    assert_eq!(all[16..20], [127, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([all[24], all[25]]), client.port());
    assert_eq!(u16::from_be_bytes([all[26], all[27]]), port);
    assert_eq!(&all[28..], b"hello");
}

#[test]
fn udp_flows_reach_a_backend_and_come_back() {
    let port = free_port();
    let key = PortKey {
        protocol: Protocol::Udp,
        port,
    };
    let table = table(&[(key, &[5], false)]);
    let (mesh, _backends) = mesh_with_backends(&[(5, true)], &table);
    let client = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buffer = [0u8; 64];
    let mut answered = 0;
    for i in 0..300u16 {
        client.send_to(&i.to_be_bytes(), (LOOPBACK, port)).unwrap();
        if let Ok((n, from)) = client.recv_from(&mut buffer) {
            assert_eq!(from, SocketAddr::new(LOOPBACK, port));
            assert_eq!(n, 2);
            answered += 1;
            if answered == 3 {
                break;
            }
        }
    }
    assert_eq!(answered, 3, "the echo never came back");
    assert_eq!(mesh.counters().udp_flows, 1, "one client, one flow");
}

#[test]
fn a_port_without_backends_closes_connections_and_a_port_unpublished_refuses_them() {
    let port = free_port();
    let (mesh, _backends) = mesh_with_backends(&[(5, true)], &table(&[(tcp(port), &[], false)]));
    let mut stream = connect(port);
    let mut byte = [0u8; 1];
    // Closed (an end, or a reset), not merely silent until the read timeout.
    let closed = match stream.read(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(closed, "the connection was left open");
    assert_eq!(mesh.counters().no_backend, 1);
    mesh.install(table(&[]), 4789).unwrap();
    let refused = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        TcpStream::connect((LOOPBACK, port)).is_err()
    });
    assert!(refused, "port {port} still open after it was unpublished");
}

#[test]
fn frames_for_a_backend_on_another_node_go_to_that_node_as_vxlan() {
    // The "other node" is a UDP socket on loopback standing for its overlay engine.
    let other_node = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    other_node
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let data_port = other_node.local_addr().unwrap().port();
    let port = free_port();
    let mut remote = (*table(&[(tcp(port), &[5], false)])).clone();
    let backend = std::net::Ipv4Addr::new(10, 0, 0, 5);
    let ingress = remote.networks.get_mut("ingress").unwrap();
    ingress
        .endpoints
        .insert(backend, Endpoint::new(backend, "other", "task5", "svc"));
    remote.nodes.insert("other".into(), LOOPBACK);
    let config = MeshConfig {
        listen: LOOPBACK,
        direct: Some(DirectConfig {
            local_node: "this".into(),
            underlay: LOOPBACK,
        }),
    };
    // The backends' stack still answers ARP for 10.0.0.5 (as the engine would), but its TCP
    // never sees the SYN: that goes to the other node.
    let (mesh, _backends) = mesh_with_config(
        config,
        &[(5, false)],
        &std::sync::Arc::new(remote),
        data_port,
        false,
    );
    let _client = connect(port);
    let mut datagram = [0u8; 2048];
    let (n, from) = other_node.recv_from(&mut datagram).unwrap();
    assert_eq!(
        from.ip(),
        LOOPBACK,
        "sent from this node's underlay address"
    );
    assert_eq!(
        datagram[..8],
        [0x08, 0, 0, 0, 0, 0x10, 0x00, 0],
        "VXLAN, VNI 4096"
    );
    let frame = &datagram[8..n];
    assert_eq!(
        frame[..6],
        [0x02, 0x42, 10, 0, 0, 5],
        "to the backend's MAC"
    );
    assert_eq!(frame[12..14], [0x08, 0x00], "IPv4");
    assert_eq!(frame[14 + 9], 6, "TCP");
    assert_eq!(mesh.counters().connect_failures, 0);
}
