//! A service's endpoint: the ports it publishes and its virtual IPs, resolved from its spec at
//! `service create` and `update` as swarmkit does.
//!
//! Ports take docker's defaults (TCP, published through the routing mesh); an ingress port
//! without a number gets the lowest free one of the dynamic range and keeps it across later
//! updates that still ask for it. In vip mode (the default) the service gets one address per
//! network it is on: the ingress network first when it publishes through the mesh, then each
//! attached network. Everything here is a pure function of the state read, and the store checks
//! the outcome again when it applies it (`ClusterState::port_conflict`, the virtual IPs'
//! addresses), since a concurrent write may have taken a port or an address meanwhile.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpecModeEnum, ServiceSpec,
};
use ipnetwork::Ipv4Network;

use super::ipam::{IpamError, free_address};
use crate::store::state::{PortId, is_ingress_port, port_id, port_protocol};
use crate::store::{ClusterState, Conflict, Network, NetworkAddress, ServiceEndpoint};

/// Where ingress ports published without a number get one (swarmkit's dynamic range).
pub const DYNAMIC_PORTS: RangeInclusive<u16> = 30000..=32767;

/// Why a service's endpoint cannot be what its spec asks; the messages are docker's where it
/// has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// dnsrr mode has no virtual IP for the mesh to balance over.
    #[error(
        "rpc error: code = InvalidArgument desc = EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
    )]
    IngressWithDnsrr,
    /// The same protocol and published port twice in one spec.
    #[error(
        "rpc error: code = InvalidArgument desc = EndpointSpec: duplicate published ports provided"
    )]
    DuplicatePort,
    /// A port number out of range.
    #[error("rpc error: code = InvalidArgument desc = EndpointSpec: invalid port number {0}")]
    InvalidPort(i64),
    /// Another service publishes the port.
    #[error(transparent)]
    PortInUse(Conflict),
    /// The service publishes through the mesh and the swarm has no ingress network.
    #[error(
        "rpc error: code = FailedPrecondition desc = service needs ingress network, but no ingress network is present"
    )]
    NoIngress,
    /// Every port of the dynamic range is published already.
    #[error(
        "rpc error: code = ResourceExhausted desc = no port of the dynamic range {}-{} is free",
        DYNAMIC_PORTS.start(),
        DYNAMIC_PORTS.end()
    )]
    PortsExhausted,
    /// A network has no address left for a virtual IP.
    #[error("rpc error: code = ResourceExhausted desc = {0}")]
    AddressesExhausted(IpamError),
}

/// Fills in what docker fills in when it stores a spec's endpoint: vip mode, and TCP ports
/// published through the routing mesh. A spec without an endpoint spec keeps none.
pub fn normalize(spec: &mut ServiceSpec) {
    let Some(endpoint) = spec.endpoint_spec.as_mut() else {
        return;
    };
    if matches!(endpoint.mode, None | Some(EndpointSpecModeEnum::EMPTY)) {
        endpoint.mode = Some(EndpointSpecModeEnum::VIP);
    }
    for port in endpoint.ports.iter_mut().flatten() {
        port.protocol = Some(port_protocol(port));
        if matches!(
            port.publish_mode,
            None | Some(EndpointPortConfigPublishModeEnum::EMPTY)
        ) {
            port.publish_mode = Some(EndpointPortConfigPublishModeEnum::INGRESS);
        }
    }
}

/// The endpoint of the service `service_id` with `spec` (normalized, its networks named by
/// ID) next to everything else in `state`. What `current` holds is kept where the spec still
/// asks for it: a dynamic port for the same target, the virtual IP on the same network.
pub fn resolve(
    state: &ClusterState,
    service_id: &str,
    spec: &ServiceSpec,
    current: &ServiceEndpoint,
) -> Result<ServiceEndpoint, EndpointError> {
    let endpoint_spec = spec.endpoint_spec.clone().unwrap_or_default();
    let dnsrr = endpoint_spec.mode == Some(EndpointSpecModeEnum::DNSRR);
    let mut ports = endpoint_spec.ports.unwrap_or_default();
    check_ports(&ports, dnsrr)?;
    if let Some(conflict) = state.port_conflict(service_id, &ports) {
        return Err(EndpointError::PortInUse(conflict));
    }
    number_dynamic_ports(state, service_id, &mut ports, current)?;
    let publishes = ports.iter().any(is_ingress_port);
    let ingress = state.ingress_network();
    if publishes && ingress.is_none() {
        return Err(EndpointError::NoIngress);
    }
    let mut virtual_ips = Vec::new();
    if !dnsrr {
        let attached = spec
            .task_template
            .as_ref()
            .and_then(|t| t.networks.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|a| state.network(a.target.as_deref().unwrap_or_default()));
        let mut networks: Vec<&Network> = Vec::new();
        for network in ingress.filter(|_| publishes).into_iter().chain(attached) {
            if networks.iter().all(|n| n.id != network.id) {
                networks.push(network);
            }
        }
        for network in networks {
            virtual_ips.push(virtual_ip(state, service_id, network, current)?);
        }
    }
    Ok(ServiceEndpoint { ports, virtual_ips })
}

/// Swarmkit's checks of one spec's ports: numbers in range, no ingress port in dnsrr mode, no
/// published port twice.
fn check_ports(ports: &[EndpointPortConfig], dnsrr: bool) -> Result<(), EndpointError> {
    let mut seen: BTreeSet<PortId> = BTreeSet::new();
    for port in ports {
        for number in [port.target_port, port.published_port]
            .into_iter()
            .flatten()
        {
            if u16::try_from(number).is_err() {
                return Err(EndpointError::InvalidPort(number));
            }
        }
        if dnsrr && is_ingress_port(port) {
            return Err(EndpointError::IngressWithDnsrr);
        }
        if let Some(id) = port_id(port) {
            if !seen.insert(id) {
                return Err(EndpointError::DuplicatePort);
            }
        }
    }
    Ok(())
}

/// Gives every ingress port of `ports` without a number one: the number `current` gave the
/// same port (name, protocol and target) if no one else has it now, else the lowest free one
/// of [`DYNAMIC_PORTS`]. Host-mode ports without a number stay so (the node picks one).
fn number_dynamic_ports(
    state: &ClusterState,
    service_id: &str,
    ports: &mut [EndpointPortConfig],
    current: &ServiceEndpoint,
) -> Result<(), EndpointError> {
    // Any other service's port of that protocol and number, and this spec's own.
    let mut taken: BTreeSet<PortId> = state
        .ports_held(service_id)
        .filter_map(|(_, p)| port_id(p))
        .chain(ports.iter().filter_map(port_id))
        .collect();
    for port in ports.iter_mut() {
        if !is_ingress_port(port) || port_id(port).is_some() {
            continue;
        }
        let protocol = port_protocol(port);
        let kept = current
            .ports
            .iter()
            .filter(|c| is_ingress_port(c) && same_port(c, port))
            .filter_map(port_id)
            .find(|id| !taken.contains(id));
        let id = match kept {
            Some(id) => id,
            None => DYNAMIC_PORTS
                .map(|number| (protocol, number))
                .find(|id| !taken.contains(id))
                .ok_or(EndpointError::PortsExhausted)?,
        };
        taken.insert(id);
        port.published_port = Some(i64::from(id.1));
    }
    Ok(())
}

/// Whether two ports are the same but for their published number.
fn same_port(a: &EndpointPortConfig, b: &EndpointPortConfig) -> bool {
    a.name == b.name && port_protocol(a) == port_protocol(b) && a.target_port == b.target_port
}

/// The service's address on `network`: the one `current` holds there if it is still free,
/// else the lowest free one.
fn virtual_ip(
    state: &ClusterState,
    service_id: &str,
    network: &Network,
    current: &ServiceEndpoint,
) -> Result<NetworkAddress, EndpointError> {
    let held = state.addresses_held(&network.id, Some(service_id));
    let kept = current
        .virtual_ips
        .iter()
        .find(|v| v.network_id == network.id)
        .map(|v| v.address.ip())
        .filter(|ip| network.is_host_address(*ip) && !held.contains(ip));
    let ip = match kept {
        Some(ip) => ip,
        None => free_address(network, &held).map_err(EndpointError::AddressesExhausted)?,
    };
    Ok(NetworkAddress {
        network_id: network.id.clone(),
        address: Ipv4Network::new(ip, network.subnet.prefix())
            .expect("a subnet's prefix length is valid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::ipam::tests::net;
    use crate::store::{Meta, Object, Service, Task, TaskNetwork};
    use bollard::models::{
        EndpointPortConfigProtocolEnum, EndpointSpec, NetworkAttachmentConfig, TaskSpec,
    };

    const TCP: EndpointPortConfigProtocolEnum = EndpointPortConfigProtocolEnum::TCP;
    const UDP: EndpointPortConfigProtocolEnum = EndpointPortConfigProtocolEnum::UDP;
    const INGRESS: EndpointPortConfigPublishModeEnum = EndpointPortConfigPublishModeEnum::INGRESS;
    const HOST: EndpointPortConfigPublishModeEnum = EndpointPortConfigPublishModeEnum::HOST;

    /// A swarm with its ingress network (10.0.0.0/24) and `appnet` (10.0.1.0/24).
    fn swarm() -> ClusterState {
        let mut state = ClusterState::default();
        let mut ingress = net("ing", "10.0.0.0/24", 4096);
        ingress.spec.ingress = Some(true);
        state.insert(Object::Network(ingress));
        state.insert(Object::Network(net("app", "10.0.1.0/24", 4097)));
        state
    }

    fn port(published: i64, target: i64) -> EndpointPortConfig {
        EndpointPortConfig {
            target_port: Some(target),
            published_port: (published != 0).then_some(published),
            ..Default::default()
        }
    }

    fn host(published: i64, target: i64) -> EndpointPortConfig {
        EndpointPortConfig {
            publish_mode: Some(HOST),
            ..port(published, target)
        }
    }

    fn spec(name: &str, ports: Vec<EndpointPortConfig>, networks: &[&str]) -> ServiceSpec {
        let mut spec = ServiceSpec {
            name: Some(name.into()),
            endpoint_spec: Some(EndpointSpec {
                mode: None,
                ports: Some(ports),
            }),
            task_template: Some(TaskSpec {
                networks: Some(
                    networks
                        .iter()
                        .map(|n| NetworkAttachmentConfig {
                            target: Some(n.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        normalize(&mut spec);
        spec
    }

    fn dnsrr(mut spec: ServiceSpec) -> ServiceSpec {
        spec.endpoint_spec.as_mut().unwrap().mode = Some(EndpointSpecModeEnum::DNSRR);
        spec
    }

    /// Resolves and stores (creates or replaces) the service `id` with `spec`.
    fn put(state: &mut ClusterState, id: &str, spec: ServiceSpec) -> Result<(), EndpointError> {
        let current = state
            .services
            .get(id)
            .map(|s| s.endpoint.clone())
            .unwrap_or_default();
        let endpoint = resolve(state, id, &spec, &current)?;
        state.insert(Object::Service(Service {
            id: id.into(),
            meta: Meta::default(),
            spec,
            previous_spec: None,
            generation: 1,
            update_status: None,
            endpoint,
        }));
        Ok(())
    }

    fn published(state: &ClusterState, id: &str) -> Vec<(String, i64, i64)> {
        state.services[id]
            .endpoint
            .ports
            .iter()
            .map(|p| {
                (
                    format!("{}/{}", p.protocol.unwrap(), p.publish_mode.unwrap()),
                    p.published_port.unwrap_or(0),
                    p.target_port.unwrap_or(0),
                )
            })
            .collect()
    }

    fn vips(state: &ClusterState, id: &str) -> Vec<(String, String)> {
        state.services[id]
            .endpoint
            .virtual_ips
            .iter()
            .map(|v| (v.network_id.clone(), v.address.to_string()))
            .collect()
    }

    #[test]
    fn ports_take_docker_defaults() {
        let spec = spec("web", vec![port(8080, 80)], &[]);
        let endpoint = spec.endpoint_spec.as_ref().unwrap();
        assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::VIP));
        let port = &endpoint.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.protocol, port.publish_mode),
            (Some(TCP), Some(INGRESS))
        );
        // No endpoint spec: none is made up.
        let mut bare = ServiceSpec::default();
        normalize(&mut bare);
        assert_eq!(bare.endpoint_spec, None);
    }

    #[test]
    fn ingress_ports_without_a_number_get_the_lowest_free_dynamic_one() {
        let mut state = swarm();
        put(
            &mut state,
            "s1",
            spec("a", vec![port(0, 80), port(30000, 81)], &[]),
        )
        .unwrap();
        assert_eq!(
            published(&state, "s1"),
            [
                ("tcp/ingress".into(), 30001, 80),
                ("tcp/ingress".into(), 30000, 81)
            ]
        );
        // Another service's port of the same number but another protocol does not count.
        let mut udp = port(0, 53);
        udp.protocol = Some(UDP);
        put(
            &mut state,
            "s2",
            spec("b", vec![port(0, 80), udp, host(0, 90)], &[]),
        )
        .unwrap();
        assert_eq!(
            published(&state, "s2"),
            [
                ("tcp/ingress".into(), 30002, 80),
                ("udp/ingress".into(), 30000, 53),
                // A host-mode port without a number keeps none: the node picks one.
                ("tcp/host".into(), 0, 90),
            ]
        );
    }

    #[test]
    fn a_dynamic_port_is_kept_across_updates_and_released_without_it() {
        let mut state = swarm();
        put(&mut state, "s1", spec("a", vec![port(0, 80)], &[])).unwrap();
        put(&mut state, "s2", spec("b", vec![port(0, 80)], &[])).unwrap();
        assert_eq!(published(&state, "s2")[0].1, 30001);
        // An unrelated update (another port added) keeps it.
        put(
            &mut state,
            "s2",
            spec("b", vec![port(9000, 90), port(0, 80)], &[]),
        )
        .unwrap();
        assert_eq!(published(&state, "s2")[1].1, 30001);
        // Updated without it, or removed, the service no longer holds it.
        put(&mut state, "s1", spec("a", vec![], &[])).unwrap();
        put(&mut state, "s3", spec("c", vec![port(0, 80)], &[])).unwrap();
        assert_eq!(published(&state, "s3")[0].1, 30000);
        state.services.remove("s2");
        put(
            &mut state,
            "s1",
            spec("a", vec![port(9000, 80), port(30001, 81)], &[]),
        )
        .unwrap();
    }

    #[test]
    fn a_port_another_service_publishes_is_refused_in_docker_words() {
        let mut state = swarm();
        put(
            &mut state,
            "s1",
            spec("web", vec![port(8080, 80), host(9090, 90)], &[]),
        )
        .unwrap();
        let err = put(&mut state, "s2", spec("api", vec![port(8080, 81)], &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'web' (s1) as an ingress port"
        );
        // Host mode does not escape the mesh's port...
        let err = put(&mut state, "s2", spec("api", vec![host(8080, 81)], &[])).unwrap_err();
        assert!(err.to_string().ends_with("as an ingress port"), "{err}");
        // ... nor the mesh a host-published one; host ports of two services coexist.
        let err = put(&mut state, "s2", spec("api", vec![port(9090, 81)], &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rpc error: code = InvalidArgument desc = port '9090' is already in use by service 'web' (s1) as a host-published port"
        );
        put(&mut state, "s2", spec("api", vec![host(9090, 91)], &[])).unwrap();
        // The same number over UDP is another port.
        let mut udp = port(8080, 81);
        udp.protocol = Some(UDP);
        put(&mut state, "s3", spec("dns", vec![udp], &[])).unwrap();
        // A service's own ports are no conflict on update.
        put(&mut state, "s1", spec("web", vec![port(8080, 82)], &[])).unwrap();
    }

    #[test]
    fn bad_endpoint_specs_are_refused_in_docker_words() {
        let state = swarm();
        let refused = |spec| resolve(&state, "s1", &spec, &Default::default()).unwrap_err();
        assert_eq!(
            refused(dnsrr(spec("a", vec![port(8080, 80)], &[]))).to_string(),
            "rpc error: code = InvalidArgument desc = EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
        );
        assert_eq!(
            refused(spec("a", vec![port(8080, 80), host(8080, 81)], &[])).to_string(),
            "rpc error: code = InvalidArgument desc = EndpointSpec: duplicate published ports provided"
        );
        assert_eq!(
            refused(spec("a", vec![port(70000, 80)], &[])),
            EndpointError::InvalidPort(70000)
        );
        let mut no_ingress = swarm();
        no_ingress.networks.remove("ing");
        let err = resolve(
            &no_ingress,
            "s1",
            &spec("a", vec![port(0, 80)], &[]),
            &Default::default(),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "rpc error: code = FailedPrecondition desc = service needs ingress network, but no ingress network is present"
        );
    }

    #[test]
    fn dnsrr_with_host_ports_is_fine_and_has_no_virtual_ip() {
        let mut state = swarm();
        put(
            &mut state,
            "s1",
            dnsrr(spec("a", vec![host(8080, 80)], &["app"])),
        )
        .unwrap();
        assert!(vips(&state, "s1").is_empty());
    }

    #[test]
    fn virtual_ips_come_on_ingress_first_then_each_network_and_skip_held_addresses() {
        let mut state = swarm();
        // A node's ingress address and a task's appnet address are taken.
        let mut node = match crate::store::state::test_node("n1") {
            Object::Node(n) => n,
            _ => unreachable!(),
        };
        node.ingress = Some(NetworkAddress {
            network_id: "ing".into(),
            address: "10.0.0.2/24".parse().unwrap(),
        });
        state.insert(Object::Node(node));
        state.insert(Object::Task(Task {
            id: "t1".into(),
            meta: Meta::default(),
            service_id: "other".into(),
            slot: 1,
            node_id: None,
            generation: 1,
            spec: Default::default(),
            desired_state: bollard::models::TaskState::RUNNING,
            status: Default::default(),
            networks: vec![TaskNetwork {
                network_id: "app".into(),
                address: "10.0.1.2/24".parse().unwrap(),
                aliases: Vec::new(),
            }],
        }));
        put(&mut state, "s1", spec("a", vec![port(8080, 80)], &["app"])).unwrap();
        assert_eq!(
            vips(&state, "s1"),
            [
                ("ing".into(), "10.0.0.3/24".into()),
                ("app".into(), "10.0.1.3/24".into())
            ]
        );
        // No published port: no ingress VIP.
        put(&mut state, "s2", spec("b", vec![], &["app"])).unwrap();
        assert_eq!(vips(&state, "s2"), [("app".into(), "10.0.1.4/24".into())]);
        // Kept across an update; the one on a network the service leaves is freed.
        put(&mut state, "s1", spec("a", vec![port(8081, 80)], &[])).unwrap();
        assert_eq!(vips(&state, "s1"), [("ing".into(), "10.0.0.3/24".into())]);
        put(&mut state, "s3", spec("c", vec![], &["app"])).unwrap();
        assert_eq!(vips(&state, "s3"), [("app".into(), "10.0.1.3/24".into())]);
        // Every allocator counts virtual IPs as held.
        assert!(
            state
                .addresses_held("app", None)
                .contains(&"10.0.1.3".parse().unwrap())
        );
        assert!(
            state
                .addresses_held("ing", None)
                .contains(&"10.0.0.2".parse().unwrap())
        );
    }
}
