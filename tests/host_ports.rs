//! Host-mode published ports against the real kernel, as root. The forwarder in a sandbox (see
//! `sandbox`): a task namespace with a TCP and a UDP echo server on its loopback, reached
//! through a forwarder bound in the sandbox's own namespace, which stands for the node's. Then
//! the whole path in an in-process daemon (see `common`): a service's task answers on its host
//! port, a port taken on the node is said in the task's status, and the port closes with the
//! service. Skipped, with a note, without root.

mod common;
mod sandbox;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, TaskState,
};
use common::{Cluster, eventually, service_spec};
use rtnetlink::LinkUnspec;
use shoal::net::mesh::host::{HostForwarder, HostPort, UDP_IDLE};
use shoal::net::plumb::NetnsFile;
use shoal::net::routes::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

/// A guard against hangs, not a timing assertion: everything here is on loopback.
const PATIENCE: Duration = Duration::from_secs(10);
/// Where the task's servers listen, inside its namespace.
const TARGET: u16 = 7000;

/// Sets `lo` up in the namespace at `netns`, or in the sandbox's own with `None`.
async fn loopback_up(netns: Option<&Path>) {
    let handle = match netns {
        Some(netns) => sandbox::netlink_in(netns),
        None => {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(connection);
            handle
        }
    };
    handle
        .link()
        .set(LinkUnspec::new_with_name("lo").up().build())
        .execute()
        .await
        .unwrap();
}

/// A task namespace with `lo` up, kept at `scratch/task`.
async fn task_namespace(scratch: &Path) -> NetnsFile {
    loopback_up(None).await;
    let task = NetnsFile::create(&scratch.join("task")).unwrap();
    loopback_up(Some(task.path())).await;
    task
}

/// A TCP server on the task's loopback that answers each connection with what it reads.
fn tcp_echo_in(netns: &Path) {
    let listener = sandbox::in_netns(netns, || {
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, TARGET)).unwrap()
    });
    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
}

/// A UDP server on the task's loopback that answers each datagram with the port it came from,
/// so the test can tell the forwarder's flows apart.
fn udp_echo_in(netns: &Path) {
    let socket = sandbox::in_netns(netns, || {
        std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, TARGET)).unwrap()
    });
    socket.set_nonblocking(true).unwrap();
    let socket = UdpSocket::from_std(socket).unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        loop {
            let (_, peer) = socket.recv_from(&mut buffer).await.unwrap();
            socket
                .send_to(&peer.port().to_be_bytes(), peer)
                .await
                .unwrap();
        }
    });
}

async fn echo_over_tcp(port: u16, message: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    stream.write_all(message).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(PATIENCE, stream.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    back
}

/// The port the task saw a datagram from `client` come from.
async fn flow_port(client: &UdpSocket, port: u16) -> u16 {
    client
        .send_to(b"hello", (Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    let mut answer = [0u8; 2];
    let (len, from) = timeout(PATIENCE, client.recv_from(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((len, from.port()), (2, port));
    u16::from_be_bytes(answer)
}

async fn client() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap()
}

#[test]
fn tcp_reaches_the_task_namespace_and_stops() {
    if !sandbox::have_root("tcp_reaches_the_task_namespace_and_stops") {
        return;
    }
    sandbox::run(|scratch| async move {
        let task = task_namespace(&scratch).await;
        tcp_echo_in(task.path());
        // Nothing listens on the target in the node's namespace: only the forwarder reaches it.
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, TARGET))
                .await
                .is_err()
        );

        let port = HostPort {
            protocol: Protocol::Tcp,
            published: 0,
            target: TARGET,
        };
        let forwarder = HostForwarder::start(port, task.path(), UDP_IDLE)
            .await
            .unwrap();
        let published = forwarder.local_addr().port();
        assert_ne!(published, 0);
        assert_eq!(
            forwarder.local_addr().ip(),
            std::net::IpAddr::from(Ipv4Addr::UNSPECIFIED)
        );

        // Several connections at once, and a payload bigger than any socket buffer.
        let big: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7) as u8).collect();
        let (a, b, c) = tokio::join!(
            echo_over_tcp(published, b"one"),
            echo_over_tcp(published, b"two"),
            echo_over_tcp(published, &big),
        );
        assert_eq!((&a[..], &b[..]), (&b"one"[..], &b"two"[..]));
        assert!(c == big, "the 4 MiB echo came back altered");

        // A second forwarder cannot take the same port.
        let again = HostPort { published, ..port };
        let taken = HostForwarder::start(again, task.path(), UDP_IDLE).await;
        assert_eq!(taken.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);

        // A connection open while the forwarder stops ends with it.
        let mut open = TcpStream::connect((Ipv4Addr::LOCALHOST, published))
            .await
            .unwrap();
        open.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        open.read_exact(&mut one).await.unwrap();
        forwarder.stop().await;
        let mut rest = Vec::new();
        let closed = timeout(PATIENCE, open.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(closed.is_err() || rest.is_empty(), "{closed:?}");
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, published))
                .await
                .is_err(),
            "the port still answers after stop"
        );
    });
}

#[test]
fn udp_flows_per_client_expire_when_idle() {
    if !sandbox::have_root("udp_flows_per_client_expire_when_idle") {
        return;
    }
    sandbox::run(|scratch| async move {
        let task = task_namespace(&scratch).await;
        udp_echo_in(task.path());
        let idle = Duration::from_millis(300);
        let port = HostPort {
            protocol: Protocol::Udp,
            published: 0,
            target: TARGET,
        };
        let forwarder = HostForwarder::start(port, task.path(), idle).await.unwrap();
        let published = forwarder.local_addr().port();

        // The port is this forwarder's alone.
        let again = HostPort { published, ..port };
        let taken = HostForwarder::start(again, task.path(), idle).await;
        assert_eq!(taken.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);

        // One flow per client: the same socket in the task namespace while it is in use.
        let (first, second) = (client().await, client().await);
        let flow = flow_port(&first, published).await;
        assert_eq!(flow_port(&first, published).await, flow);
        let other = flow_port(&second, published).await;
        assert_ne!(other, flow);

        // Idle for longer than `idle` plus a sweep: the next datagram opens a new flow.
        tokio::time::sleep(idle * 2).await;
        assert_ne!(flow_port(&first, published).await, flow);

        // Stopped: the port is free again, for a socket without SO_REUSEADDR too.
        forwarder.stop().await;
        std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, published))
            .expect("the port is still bound after stop");
    });
}

#[test]
fn a_namespace_that_is_gone_is_an_error() {
    if !sandbox::have_root("a_namespace_that_is_gone_is_an_error") {
        return;
    }
    sandbox::run(|scratch| async move {
        let port = HostPort {
            protocol: Protocol::Tcp,
            published: 0,
            target: TARGET,
        };
        let missing = scratch.join("no-such-task");
        let error = HostForwarder::start(port, &missing, UDP_IDLE)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    });
}

/// A web server task on its loopback's port 80, published in host mode on `published` (the
/// node picks with `None`).
fn web_service(name: &str, root: &Path, published: Option<u16>) -> bollard::models::ServiceSpec {
    let root = root.to_str().unwrap();
    let args = ["busybox", "httpd", "-f", "-p", "127.0.0.1:80", "-h", root];
    let mut spec = service_spec(name, Some(1), &args);
    spec.endpoint_spec = Some(EndpointSpec {
        ports: Some(vec![EndpointPortConfig {
            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(80),
            published_port: published.map(i64::from),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        }]),
        ..Default::default()
    });
    spec
}

/// Service `name`'s running task's status.
async fn running_status(cluster: &Cluster, name: &str) -> Option<bollard::models::TaskStatus> {
    let tasks = cluster.tasks(0, name).await;
    let status = tasks.into_iter().find_map(|t| t.status)?;
    (status.state == Some(TaskState::RUNNING)).then_some(status)
}

async fn get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: task\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    Some(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_answers_on_its_host_port_until_its_service_goes() {
    if !sandbox::have_root("a_task_answers_on_its_host_port_until_its_service_goes") {
        return;
    }
    // One site directory per service: the harness tells their processes apart by command line.
    let sites = tempfile::tempdir().unwrap();
    let (site, other_site) = (sites.path().join("hostweb"), sites.path().join("clash"));
    for dir in [&site, &other_site] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("index.html"), "from the task\n").unwrap();
    }
    let mut cluster = Cluster::managers(1).await;

    cluster
        .create_service(0, web_service("hostweb", &site, None))
        .await;
    eventually("the task runs with its host port", || async {
        running_status(&cluster, "hostweb")
            .await
            .is_some_and(|s| s.port_status.is_some())
    })
    .await;
    let status = running_status(&cluster, "hostweb").await.unwrap();
    assert_eq!(status.message.as_deref(), Some("started"));
    let ports = status.port_status.unwrap().ports.unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].target_port, Some(80));
    let published = u16::try_from(ports[0].published_port.unwrap()).unwrap();
    assert_ne!(published, 0);
    eventually("the page comes through the host port", || async {
        get(published)
            .await
            .is_some_and(|page| page.ends_with("from the task\n"))
    })
    .await;

    // A port something else holds on the node: the task runs, its status says why the port
    // is not there.
    let holder = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let taken = holder.local_addr().unwrap().port();
    cluster
        .create_service(0, web_service("clash", &other_site, Some(taken)))
        .await;
    eventually("the clashing task runs", || async {
        running_status(&cluster, "clash").await.is_some()
    })
    .await;
    let status = running_status(&cluster, "clash").await.unwrap();
    let message = status.message.unwrap_or_default();
    assert!(
        message.starts_with(&format!("started; host port {taken}/tcp: ")),
        "{message}"
    );
    assert_eq!(status.port_status, None);

    cluster.remove_service(0, "hostweb").await;
    eventually("the host port closes with the service", || async {
        TcpStream::connect((Ipv4Addr::LOCALHOST, published))
            .await
            .is_err()
    })
    .await;
    cluster.remove_service(0, "clash").await;
    cluster.shutdown().await;
}
