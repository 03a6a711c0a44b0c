//! The routing mesh's per-flow work, without syscalls: building a Maglev table when a service's
//! tasks change, picking a backend for a new flow, and writing a PROXY protocol header; and the
//! proxy loop itself: a kernel TCP client on loopback, the mesh, and an echoing smoltcp backend
//! behind a socket pair (tests/support/smol_backend.rs), so the figures are the mesh's own
//! cost plus a second userspace stack, with no overlay in between.
//! Run with `cargo bench --bench mesh`.

#[path = "../tests/support/smol_backend.rs"]
#[allow(dead_code)]
mod smol_backend;

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shoal::net::mesh::maglev::{Maglev, flow_hash};
use shoal::net::mesh::proxy_protocol::{self, MAX_HEADER_LEN, Transport};
use shoal::net::routes::{PortKey, Protocol};

/// Task IDs as swarm makes them: 25 base-36 characters.
fn task_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{i:0>4}qzk1x8v2m7c5n3b6l9j0h4"))
        .collect()
}

/// Clients of one network: consecutive ports of a few addresses.
fn client(i: u32) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::new(198, 51, 100, (i % 200) as u8),
        32768 + (i % 28000) as u16,
    ))
}

fn maglev(c: &mut Criterion) {
    let mut group = c.benchmark_group("maglev");
    for n in [2, 10, 100] {
        let names = task_ids(n);
        group.bench_with_input(
            BenchmarkId::new("build 65537 slots", n),
            &names,
            |b, names| b.iter(|| Maglev::new(black_box(names), Maglev::DEFAULT_SIZE)),
        );
    }

    let table = Maglev::new(&task_ids(10), Maglev::DEFAULT_SIZE);
    let hashes: Vec<u64> = (0..1024).map(|i| flow_hash(client(i))).collect();
    let mut i = 0u32;
    group.bench_function("flow_hash", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            flow_hash(black_box(client(i)))
        })
    });
    group.bench_function("lookup (10 backends)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            table.lookup(black_box(hashes[i as usize % hashes.len()]))
        })
    });
    group.bench_function("flow_hash + lookup (10 backends)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            table.lookup(flow_hash(black_box(client(i))))
        })
    });
    group.finish();
}

fn proxy_protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("proxy_protocol");
    let mut out = [0u8; MAX_HEADER_LEN];
    let local = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 8080));
    group.bench_function("encode v2 IPv4 TCP", |b| {
        b.iter(|| {
            proxy_protocol::encode(
                black_box(client(7)),
                black_box(local),
                Transport::Stream,
                &mut out,
            )
        })
    });
    let client6: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
    let local6: SocketAddr = "[2001:db8::1]:8080".parse().unwrap();
    group.bench_function("encode v2 IPv6 TCP", |b| {
        b.iter(|| {
            proxy_protocol::encode(
                black_box(client6),
                black_box(local6),
                Transport::Stream,
                &mut out,
            )
        })
    });
    group.finish();
}

/// Connects to the mesh's port once it is bound.
fn connect(port: u16) -> TcpStream {
    for _ in 0..500 {
        if let Ok(stream) = TcpStream::connect((smol_backend::LOOPBACK, port)) {
            stream.set_nodelay(true).unwrap();
            return stream;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the mesh never bound port {port}");
}

fn proxy_loop(c: &mut Criterion) {
    let port = smol_backend::free_port();
    let key = PortKey {
        protocol: Protocol::Tcp,
        port,
    };
    let table = smol_backend::table(&[(key, &[5], false)]);
    let (_mesh, _backends) = smol_backend::mesh_with_backends(&[(5, true)], &table);
    let mut group = c.benchmark_group("proxy_loop");

    let mut stream = connect(port);
    let request = [7u8; 64];
    let mut response = [0u8; 64];
    group.bench_function("round trip 64 B, kept-alive connection", |b| {
        b.iter(|| {
            stream.write_all(&request).unwrap();
            stream.read_exact(&mut response).unwrap();
        })
    });

    group.bench_function("connection per round trip 64 B", |b| {
        b.iter(|| {
            let mut stream = connect(port);
            stream.write_all(&request).unwrap();
            stream.read_exact(&mut response).unwrap();
        })
    });

    // Chunks well under the buffers on each side, so writing one and reading it back never
    // waits on the other.
    let chunk = vec![9u8; 64 << 10];
    let mut back = vec![0u8; chunk.len()];
    group.throughput(Throughput::Bytes(16 * chunk.len() as u64));
    group.bench_function("echo 1 MiB in 64 KiB chunks", |b| {
        b.iter(|| {
            for _ in 0..16 {
                stream.write_all(&chunk).unwrap();
                stream.read_exact(&mut back).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = mesh;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = maglev, proxy_protocol, proxy_loop
}
criterion_main!(mesh);
