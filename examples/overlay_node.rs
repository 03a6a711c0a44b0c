//! One node of a two-node overlay, for lab measurements: starts an [`Engine`] on
//! `UNDERLAY:4789` with the TAP `sht4096` of network "n1" (VNI 4096, 10.0.1.0/24, MTU 1450),
//! endpoint 10.0.1.2 on node a and 10.0.1.3 on node b, then prints "installed" and forwards
//! until stdin closes, when it prints its counters. Needs root. Used by `examples/overlay_lab.sh`.
//!
//! `overlay_node <a|b> <underlay of a> <underlay of b> [queues]`

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use shoal::net::overlay::{Engine, EngineConfig};
use shoal::net::routes::{Endpoint, NetworkInfo, NetworkRoutes, RouteTable, mac_for};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (node, a, b, queues) = match &args[1..] {
        [node, a, b] => (node, a, b, 0),
        [node, a, b, q] => (node, a, b, q.parse().expect("queues")),
        _ => {
            eprintln!("usage: overlay_node <a|b> <underlay of a> <underlay of b> [queues]");
            std::process::exit(2);
        }
    };
    let a: IpAddr = a.parse().expect("address");
    let b: IpAddr = b.parse().expect("address");
    let mut table = RouteTable::default();
    table.nodes.insert("a".into(), a);
    table.nodes.insert("b".into(), b);
    let endpoints: BTreeMap<Ipv4Addr, Endpoint> = [(2, "a"), (3, "b")]
        .into_iter()
        .map(|(last, node)| {
            let address = Ipv4Addr::new(10, 0, 1, last);
            let endpoint = Endpoint {
                address,
                mac: mac_for(address),
                node_id: node.into(),
                task_id: format!("t{last}"),
                service_id: "s".into(),
            };
            (address, endpoint)
        })
        .collect();
    let info = NetworkInfo {
        id: "n1".into(),
        name: "n1".into(),
        vni: 4096,
        subnet: "10.0.1.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 0, 1, 1),
        mtu: 1450,
    };
    table
        .networks
        .insert("n1".into(), NetworkRoutes { info, endpoints });
    let listen = SocketAddr::new(if node == "a" { a } else { b }, 4789);
    let engine = Engine::start(EngineConfig {
        local_node: node.clone(),
        listen,
        queues,
    })?;
    engine.install(Arc::new(table))?;
    println!("installed");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    println!("{node}: {:?}", engine.counters());
    Ok(())
}
