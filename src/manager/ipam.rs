//! Address management for overlay networks: subnets cut from the swarm's default address pools,
//! gateways, VXLAN network identifiers, MTUs, and the task addresses inside a subnet.
//!
//! Everything here is a pure function of what is already allocated, so the API (creating a
//! network) and the allocator (giving tasks addresses) decide the same way; the store checks
//! the outcome again when it applies it (see `ClusterState::apply`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use bollard::models::NetworkCreateRequest;
use ipnetwork::Ipv4Network;

use crate::store::{Cluster, Meta, Network};

/// The first VXLAN network identifier swarm hands out (the ingress network gets it).
pub const FIRST_VNI: u32 = 4096;
/// The largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// The MTU of the underlay shoal assumes.
pub const UNDERLAY_MTU: u16 = 1500;
/// What VXLAN encapsulation costs: outer Ethernet, IP, UDP and VXLAN headers.
pub const VXLAN_OVERHEAD: u16 = 50;
/// The driver option that sets a network's MTU.
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// The driver state option that names a network's VNI, as docker shows it.
pub const VXLANID_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// The routing mesh network `swarm init` creates.
pub const INGRESS_NAME: &str = "ingress";

/// Why a network or an address could not be allocated; the messages are docker's where it has
/// one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Every subnet of every default pool overlaps a network.
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    PoolsExhausted,
    /// A default pool is not an IPv4 CIDR.
    #[error("invalid default address pool {0}")]
    InvalidPool(String),
    /// The user's subnet is not an IPv4 CIDR.
    #[error("invalid subnet {0}: invalid CIDR address: {0}")]
    InvalidSubnet(String),
    /// The user's subnet is too small to hold a gateway and a task.
    #[error("invalid subnet {0}: it must be /29 or larger")]
    SubnetTooSmall(String),
    /// The user's subnet overlaps an existing network's.
    #[error(
        "invalid pool request: Pool overlaps with other one on this address space ({subnet} overlaps {other} of network {network})"
    )]
    Overlap {
        /// The subnet asked for.
        subnet: Ipv4Network,
        /// The subnet it overlaps.
        other: Ipv4Network,
        /// The network that has it.
        network: String,
    },
    /// A gateway without a subnet.
    #[error("a gateway can only be given with a subnet (--subnet)")]
    GatewayWithoutSubnet,
    /// The gateway is not an IPv4 address.
    #[error("invalid gateway address {0}: ParseAddr(\"{0}\"): unable to parse IP")]
    InvalidGateway(String),
    /// The gateway is not a host address of the subnet.
    #[error("no matching subnet for gateway {gateway}: it is not a host address of {subnet}")]
    GatewayOutside {
        /// The gateway asked for.
        gateway: Ipv4Addr,
        /// The subnet.
        subnet: Ipv4Network,
    },
    /// More than one IPAM configuration.
    #[error("shoal overlay networks take one IPv4 subnet; {0} were given")]
    SeveralSubnets(usize),
    /// Every VNI is taken.
    #[error("no VXLAN network identifier is free (all of {FIRST_VNI}-{MAX_VNI} are in use)")]
    VnisExhausted,
    /// The MTU option is not a number in range.
    #[error("invalid MTU value {0:?}: it must be a number between 68 and 65535")]
    InvalidMtu(String),
    /// The network has no free address left for a task.
    #[error("no available IPv4 addresses on network {0}")]
    AddressesExhausted(String),
}

/// The lowest VNI no network in `networks` has.
pub fn free_vni<'a>(networks: impl IntoIterator<Item = &'a Network>) -> Result<u32, IpamError> {
    let used: BTreeSet<u32> = networks.into_iter().map(|n| n.vni).collect();
    (FIRST_VNI..=MAX_VNI)
        .find(|vni| !used.contains(vni))
        .ok_or(IpamError::VnisExhausted)
}

/// The first subnet of prefix length `size` in `pools`, in order, that overlaps none of
/// `taken`.
pub fn pool_subnet(
    pools: &[String],
    size: u8,
    taken: &[Ipv4Network],
) -> Result<Ipv4Network, IpamError> {
    for raw in pools {
        let pool: Ipv4Network = raw
            .parse()
            .map_err(|_| IpamError::InvalidPool(raw.clone()))?;
        if size < pool.prefix() || size > 32 {
            return Err(IpamError::InvalidPool(raw.clone()));
        }
        let base = u32::from(pool.network());
        let step = 1u64 << (32 - size);
        let count = 1u64 << (size - pool.prefix());
        for i in 0..count {
            let start = base as u64 + i * step;
            let candidate = Ipv4Network::new(Ipv4Addr::from(start as u32), size)
                .expect("the prefix length was checked");
            if !taken.iter().any(|t| t.overlaps(candidate)) {
                return Ok(candidate);
            }
        }
    }
    Err(IpamError::PoolsExhausted)
}

/// The user's subnet, checked: an IPv4 CIDR (taken to its network address) overlapping none of
/// the `networks`.
pub fn user_subnet<'a>(
    raw: &str,
    networks: impl IntoIterator<Item = &'a Network>,
) -> Result<Ipv4Network, IpamError> {
    let parsed: Ipv4Network = raw
        .parse()
        .map_err(|_| IpamError::InvalidSubnet(raw.to_string()))?;
    if parsed.prefix() > 29 {
        return Err(IpamError::SubnetTooSmall(raw.to_string()));
    }
    let subnet = Ipv4Network::new(parsed.network(), parsed.prefix())
        .map_err(|_| IpamError::InvalidSubnet(raw.to_string()))?;
    match networks.into_iter().find(|n| n.subnet.overlaps(subnet)) {
        Some(other) => Err(IpamError::Overlap {
            subnet,
            other: other.subnet,
            network: other.name().to_string(),
        }),
        None => Ok(subnet),
    }
}

/// The gateway of `subnet`: the user's (a host address of the subnet), else its first host.
pub fn gateway(subnet: Ipv4Network, raw: Option<&str>) -> Result<Ipv4Addr, IpamError> {
    let first_host = Ipv4Addr::from(u32::from(subnet.network()) + 1);
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(first_host);
    };
    let gateway: Ipv4Addr = raw
        .parse()
        .map_err(|_| IpamError::InvalidGateway(raw.to_string()))?;
    if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(IpamError::GatewayOutside { gateway, subnet });
    }
    Ok(gateway)
}

/// The MTU the options ask for, else the underlay's less the VXLAN overhead.
pub fn mtu(options: Option<&HashMap<String, String>>) -> Result<u16, IpamError> {
    match options.and_then(|o| o.get(MTU_OPTION)) {
        None => Ok(UNDERLAY_MTU - VXLAN_OVERHEAD),
        Some(raw) => raw
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&m| m >= 68)
            .ok_or_else(|| IpamError::InvalidMtu(raw.clone())),
    }
}

/// The network `spec` asks for, with its subnet, gateway, VNI and MTU allocated next to the
/// existing `networks` of a swarm with address pools `pools` cut into /`subnet_size`s.
pub fn new_network(
    id: String,
    spec: NetworkCreateRequest,
    networks: &BTreeMap<String, Network>,
    pools: &[String],
    subnet_size: u32,
) -> Result<Network, IpamError> {
    let configs = spec
        .ipam
        .as_ref()
        .and_then(|i| i.config.clone())
        .unwrap_or_default();
    if configs.len() > 1 {
        return Err(IpamError::SeveralSubnets(configs.len()));
    }
    let config = configs.into_iter().next().unwrap_or_default();
    let subnet_raw = config.subnet.as_deref().filter(|s| !s.is_empty());
    let gateway_raw = config.gateway.as_deref().filter(|g| !g.is_empty());
    let subnet = match subnet_raw {
        Some(raw) => user_subnet(raw, networks.values())?,
        None if gateway_raw.is_some() => return Err(IpamError::GatewayWithoutSubnet),
        None => {
            let taken: Vec<Ipv4Network> = networks.values().map(|n| n.subnet).collect();
            let size = u8::try_from(subnet_size).unwrap_or(u8::MAX);
            pool_subnet(pools, size, &taken)?
        }
    };
    Ok(Network {
        id,
        meta: Meta::now(),
        gateway: gateway(subnet, gateway_raw)?,
        vni: free_vni(networks.values())?,
        mtu: mtu(spec.options.as_ref())?,
        subnet,
        spec,
    })
}

/// The `ingress` network of a new swarm: the first subnet of its pools and the first VNI, as
/// docker gives it (10.0.0.0/24 and 4096 by default).
pub fn ingress_network(id: String, cluster: &Cluster) -> Result<Network, IpamError> {
    let spec = NetworkCreateRequest {
        name: INGRESS_NAME.into(),
        driver: Some("overlay".into()),
        scope: Some("swarm".into()),
        ingress: Some(true),
        labels: Some(HashMap::new()),
        ..Default::default()
    };
    new_network(
        id,
        spec,
        &BTreeMap::new(),
        &cluster.default_addr_pool,
        cluster.subnet_size,
    )
}

/// The lowest host address of `network` that is not its gateway and not in `held`.
pub fn free_address(network: &Network, held: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
    let first = u32::from(network.subnet.network()) + 1;
    let last = u32::from(network.subnet.broadcast());
    (first..last)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != network.gateway && !held.contains(ip))
        .ok_or_else(|| IpamError::AddressesExhausted(network.name().to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bollard::models::{Ipam, IpamConfig};

    /// A network named `net-<id>` on `subnet` with its first host as gateway, for tests.
    pub(crate) fn net(id: &str, subnet: &str, vni: u32) -> Network {
        let subnet: Ipv4Network = subnet.parse().unwrap();
        Network {
            id: id.into(),
            meta: Meta::default(),
            spec: NetworkCreateRequest {
                name: format!("net-{id}"),
                ..Default::default()
            },
            gateway: gateway(subnet, None).unwrap(),
            subnet,
            vni,
            mtu: 1450,
        }
    }

    fn existing(nets: &[Network]) -> BTreeMap<String, Network> {
        nets.iter().map(|n| (n.id.clone(), n.clone())).collect()
    }

    fn pools() -> Vec<String> {
        vec!["10.0.0.0/8".into()]
    }

    fn spec(subnet: Option<&str>, gateway: Option<&str>) -> NetworkCreateRequest {
        NetworkCreateRequest {
            name: "mynet".into(),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: subnet.map(Into::into),
                    gateway: gateway.map(Into::into),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn subnets_come_from_the_pool_skipping_taken_ones() {
        let taken = [
            "10.0.0.0/24".parse().unwrap(),
            "10.0.2.0/23".parse().unwrap(),
        ];
        assert_eq!(
            pool_subnet(&pools(), 24, &taken).unwrap().to_string(),
            "10.0.1.0/24"
        );
        let taken = [
            "10.0.0.0/24".parse().unwrap(),
            "10.0.1.0/24".parse().unwrap(),
            "10.0.2.0/23".parse().unwrap(),
        ];
        assert_eq!(
            pool_subnet(&pools(), 24, &taken).unwrap().to_string(),
            "10.0.4.0/24"
        );
    }

    #[test]
    fn exhausted_pools_are_a_clear_error() {
        let small = vec!["192.168.0.0/23".to_string()];
        let taken = ["192.168.0.0/24".parse().unwrap()];
        assert_eq!(
            pool_subnet(&small, 24, &taken).unwrap().to_string(),
            "192.168.1.0/24"
        );
        let taken = ["192.168.0.0/23".parse().unwrap()];
        let err = pool_subnet(&small, 24, &taken).unwrap_err();
        assert_eq!(err, IpamError::PoolsExhausted);
        assert!(
            err.to_string()
                .contains("non-overlapping IPv4 address pool")
        );
        // The next pool is tried before giving up.
        let two = vec!["192.168.0.0/23".to_string(), "172.20.0.0/16".to_string()];
        assert_eq!(
            pool_subnet(&two, 24, &taken).unwrap().to_string(),
            "172.20.0.0/24"
        );
    }

    #[test]
    fn vnis_are_the_lowest_free_from_4096() {
        assert_eq!(free_vni(&[]).unwrap(), 4096);
        let nets = [net("a", "10.0.0.0/24", 4096), net("b", "10.0.1.0/24", 4098)];
        assert_eq!(free_vni(&nets).unwrap(), 4097);
    }

    #[test]
    fn user_subnets_must_not_overlap_and_gateways_must_fit() {
        let nets = existing(&[net("a", "10.0.0.0/24", 4096)]);
        let n = new_network(
            "x".into(),
            spec(Some("10.9.0.0/16"), None),
            &nets,
            &pools(),
            24,
        )
        .unwrap();
        assert_eq!(
            (n.subnet.to_string(), n.gateway.to_string(), n.vni, n.mtu),
            ("10.9.0.0/16".into(), "10.9.0.1".into(), 4097, 1450)
        );
        let n = new_network(
            "x".into(),
            spec(Some("10.9.0.7/24"), Some("10.9.0.254")),
            &nets,
            &pools(),
            24,
        )
        .unwrap();
        assert_eq!(n.subnet.to_string(), "10.9.0.0/24");
        assert_eq!(n.gateway.to_string(), "10.9.0.254");
        let overlap = new_network(
            "x".into(),
            spec(Some("10.0.0.0/16"), None),
            &nets,
            &pools(),
            24,
        );
        assert!(matches!(overlap, Err(IpamError::Overlap { .. })));
        let outside = new_network(
            "x".into(),
            spec(Some("10.9.0.0/24"), Some("10.9.1.1")),
            &nets,
            &pools(),
            24,
        );
        assert!(matches!(outside, Err(IpamError::GatewayOutside { .. })));
        let bad = new_network(
            "x".into(),
            spec(Some("10.9.0.0/40"), None),
            &nets,
            &pools(),
            24,
        );
        assert_eq!(
            bad.unwrap_err().to_string(),
            "invalid subnet 10.9.0.0/40: invalid CIDR address: 10.9.0.0/40"
        );
        let bad_gw = new_network(
            "x".into(),
            spec(Some("10.9.0.0/24"), Some("x")),
            &nets,
            &pools(),
            24,
        );
        assert!(matches!(bad_gw, Err(IpamError::InvalidGateway(_))));
        let no_subnet = new_network(
            "x".into(),
            spec(None, Some("10.9.0.1")),
            &nets,
            &pools(),
            24,
        );
        assert_eq!(no_subnet.unwrap_err(), IpamError::GatewayWithoutSubnet);
    }

    #[test]
    fn the_mtu_option_overrides_the_default() {
        assert_eq!(mtu(None).unwrap(), 1450);
        let options = HashMap::from([(MTU_OPTION.to_string(), "1400".to_string())]);
        assert_eq!(mtu(Some(&options)).unwrap(), 1400);
        let options = HashMap::from([(MTU_OPTION.to_string(), "big".to_string())]);
        assert!(matches!(mtu(Some(&options)), Err(IpamError::InvalidMtu(_))));
    }

    #[test]
    fn ingress_gets_the_first_subnet_and_vni() {
        let cluster_pools = vec!["10.0.0.0/8".to_string()];
        let ingress = new_network(
            "i".into(),
            NetworkCreateRequest {
                name: INGRESS_NAME.into(),
                ingress: Some(true),
                ..Default::default()
            },
            &BTreeMap::new(),
            &cluster_pools,
            24,
        )
        .unwrap();
        assert_eq!(ingress.subnet.to_string(), "10.0.0.0/24");
        assert_eq!(ingress.gateway.to_string(), "10.0.0.1");
        assert_eq!(ingress.vni, 4096);
    }

    #[test]
    fn addresses_skip_the_gateway_and_held_ones_until_none_is_left() {
        let n = net("a", "10.0.1.0/29", 4096);
        let mut held = BTreeSet::new();
        let mut got = Vec::new();
        while let Ok(ip) = free_address(&n, &held) {
            held.insert(ip);
            got.push(ip.to_string());
        }
        assert_eq!(
            got,
            ["10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5", "10.0.1.6"]
        );
        assert_eq!(
            free_address(&n, &held).unwrap_err().to_string(),
            "no available IPv4 addresses on network net-a"
        );
        held.remove(&"10.0.1.3".parse().unwrap());
        assert_eq!(free_address(&n, &held).unwrap().to_string(), "10.0.1.3");
    }
}
