//! The overlay's per-packet work, without syscalls: encapsulating a frame, decapsulating a GRO
//! buffer of datagrams, FDB lookups, cutting a 64 KB super-frame into MSS segments and
//! coalescing them back. Run with `cargo bench --bench overlay`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use shoal::net::overlay::checksum;
use shoal::net::overlay::coalesce::{Coalescer, Push};
use shoal::net::overlay::fdb::{Destination, Fdb};
use shoal::net::overlay::segment::segment;
use shoal::net::overlay::wire::{
    VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VnetHeader, VxlanPacket, vxlan_header,
};
use shoal::net::routes::{Endpoint, NetworkInfo, NetworkRoutes, RouteTable, mac_for};

/// Payload per segment: a 1450 MTU less IPv4, TCP and a timestamp option.
const MSS: usize = 1398;
const VNI: u32 = 4096;

fn endpoint_address(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 2)) + i)
}

/// A TCP/IPv4 frame between two endpoints with `payload` and correct checksums.
fn tcp_frame(seq: u32, payload: &[u8]) -> Vec<u8> {
    let (a, b) = (endpoint_address(0), endpoint_address(1));
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(mac_for(a), mac_for(b))
        .ipv4(a.octets(), b.octets(), 64)
        .tcp(40000, 80, seq, 502)
        .ack(77)
        .options(&[etherparse::TcpOptionElement::Timestamp(1, 2)])
        .unwrap()
        .write(&mut frame, payload)
        .unwrap();
    frame
}

/// A table with 1000 endpoints spread over 10 nodes, node-0 being this one.
fn table() -> RouteTable {
    let nodes = (0..10u8)
        .map(|i| {
            (
                format!("node-{i}"),
                IpAddr::V4(Ipv4Addr::new(192, 168, 0, i + 1)),
            )
        })
        .collect();
    let endpoints: BTreeMap<Ipv4Addr, Endpoint> = (0..1000u32)
        .map(|i| {
            let address = endpoint_address(i);
            let endpoint = Endpoint {
                address,
                mac: mac_for(address),
                node_id: format!("node-{}", i % 10),
                task_id: format!("t{i}"),
                service_id: "s".into(),
            };
            (address, endpoint)
        })
        .collect();
    let info = NetworkInfo {
        id: "n".into(),
        name: "n".into(),
        vni: VNI,
        subnet: "10.0.0.0/20".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        mtu: 1450,
    };
    let mut networks = BTreeMap::new();
    networks.insert(
        "n".into(),
        NetworkRoutes {
            info,
            endpoints,
            services: Default::default(),
        },
    );
    RouteTable {
        nodes,
        networks,
        ..Default::default()
    }
}

fn benches(c: &mut Criterion) {
    let data: Vec<u8> = (0..65_000u32).map(|i| (i * 31) as u8).collect();
    let super_frame = tcp_frame(1, &data);
    let tso = VnetHeader {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: VNET_GSO_TCPV4,
        hdr_len: 66,
        gso_size: MSS as u16,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut out = vec![0u8; 128 << 10];
    let prefix = vxlan_header(VNI);
    let fdb = Fdb::compile(&table(), "node-0", 4789);
    let network = &fdb.networks()[0];

    // One full-sized frame: find its peer, copy it behind a VXLAN header.
    let frame = tcp_frame(1, &data[..MSS]);
    let mut group = c.benchmark_group("overlay");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("encapsulate 1464 B frame", |b| {
        b.iter(|| {
            let peer = network.destination(black_box(&mac_for(endpoint_address(1))));
            let run = segment(black_box(&frame), &VnetHeader::default(), &prefix, &mut out);
            black_box((peer, run))
        })
    });

    // A GRO buffer of datagrams: check each and find its network and destination.
    let run = segment(&super_frame, &tso, &prefix, &mut out).unwrap();
    let datagrams = out[..run.len].to_vec();
    group.throughput(Throughput::Elements(run.count as u64));
    group.bench_function("decapsulate GRO buffer (47 datagrams)", |b| {
        b.iter(|| {
            let mut local = 0;
            for datagram in black_box(&datagrams).chunks(run.segment_len) {
                let packet = VxlanPacket::new_checked(datagram).unwrap();
                let net = &fdb.networks()[fdb.network_index(packet.vni()).unwrap()];
                let mac: [u8; 6] = packet.payload()[..6].try_into().unwrap();
                local += usize::from(net.destination(&mac) == Destination::Local);
            }
            local
        })
    });

    group.throughput(Throughput::Elements(1));
    let macs: Vec<[u8; 6]> = (0..1000).map(|i| mac_for(endpoint_address(i))).collect();
    let mut i = 0;
    group.bench_function("FDB lookup (VNI + MAC, 1000 endpoints)", |b| {
        b.iter(|| {
            i = (i + 7) % macs.len();
            let index = fdb.network_index(black_box(VNI)).unwrap();
            fdb.networks()[index].destination(black_box(&macs[i]))
        })
    });

    group.throughput(Throughput::Bytes(super_frame.len() as u64));
    group.bench_function("segment 64 KB super-frame", |b| {
        b.iter(|| segment(black_box(&super_frame), &tso, &prefix, &mut out).unwrap())
    });

    let segments: Vec<&[u8]> = datagrams
        .chunks(run.segment_len)
        .map(|d| &d[prefix.len()..])
        .collect();
    let mut coalescer = Coalescer::new();
    group.bench_function("coalesce 47 segments", |b| {
        b.iter(|| {
            for segment in &segments {
                assert_eq!(coalescer.push(black_box(segment)), Push::Absorbed);
            }
            coalescer.take().map(<[u8]>::len)
        })
    });

    group.throughput(Throughput::Bytes(1500));
    group.bench_function("checksum 1500 B", |b| {
        b.iter(|| checksum::finish(checksum::add(0, black_box(&data[..1500]))))
    });
    group.finish();
}

criterion_group! {
    name = overlay;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = benches
}
criterion_main!(overlay);
