//! The settings of `swarm init` and `swarm join`, checked and completed with Swarm's defaults.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::models::{
    NodeSpecAvailabilityEnum, SwarmInitRequest, SwarmJoinRequest, SwarmSpec, SwarmSpecCaConfig,
    SwarmSpecDispatcher, SwarmSpecOrchestration, SwarmSpecRaft,
};

use super::host;
use super::swarm::SwarmError;
use crate::pki::JoinToken;

/// Swarm's control port.
pub const CONTROL_PORT: u16 = 2377;
/// Swarm's default VXLAN port.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;
/// Node certificates last 90 days unless the swarm spec says otherwise.
const DEFAULT_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The settings of a new swarm, checked.
pub struct InitSettings {
    /// Where other nodes reach this one.
    pub advertise: Advertise,
    /// Where the control port listens.
    pub listen_addr: SocketAddr,
    /// Pools overlay subnets are cut from.
    pub default_addr_pool: Vec<String>,
    /// Prefix length of each overlay subnet.
    pub subnet_size: u32,
    /// UDP port of the VXLAN data path.
    pub data_path_port: u16,
    /// The first node's availability.
    pub availability: NodeSpecAvailabilityEnum,
    /// The swarm spec with Swarm's defaults filled in.
    pub spec: SwarmSpec,
}

/// An advertised address: an IP and, if given, the control port other nodes should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advertise {
    /// The IP other nodes reach this one at.
    pub ip: IpAddr,
    /// The control port to advertise; the listening port when absent.
    pub port: Option<u16>,
}

impl Advertise {
    /// The control address, given the port the control endpoint actually listens on.
    pub fn control_addr(&self, listening_port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(listening_port))
    }
}

/// The settings of `swarm join`, checked.
pub struct JoinSettings {
    /// The manager to join through (`host:port`).
    pub remote: String,
    /// The join token.
    pub token: String,
    /// Where other nodes reach this one; found from the route to `remote` when absent.
    pub advertise: Option<Advertise>,
    /// Where the control port listens, if the node is or becomes a manager.
    pub listen_addr: SocketAddr,
    /// The node's availability (`swarm join --availability`).
    pub availability: Option<NodeSpecAvailabilityEnum>,
}

impl JoinSettings {
    /// Checks a `POST /swarm/join` body.
    pub fn from_request(
        request: SwarmJoinRequest,
        availability: Option<NodeSpecAvailabilityEnum>,
    ) -> Result<Self, SwarmError> {
        let remote = request
            .remote_addrs
            .unwrap_or_default()
            .into_iter()
            .find(|a| !a.is_empty());
        let remote =
            remote.ok_or_else(|| invalid("at least 1 RemoteAddr is required to join".into()))?;
        let remote = if remote.parse::<SocketAddr>().is_ok()
            || remote
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            remote
        } else {
            format!("{remote}:{CONTROL_PORT}")
        };
        let token = request.join_token.unwrap_or_default();
        token
            .parse::<JoinToken>()
            .map_err(|e| invalid(e.to_string()))?;
        let advertise = match request.advertise_addr.as_deref().filter(|a| !a.is_empty()) {
            Some(addr) => Some(parse_advertise_addr(addr)?),
            None => None,
        };
        Ok(JoinSettings {
            remote,
            token,
            advertise,
            listen_addr: parse_listen_addr(request.listen_addr.as_deref().unwrap_or(""))?,
            availability,
        })
    }
}

impl InitSettings {
    /// Checks a `POST /swarm/init` body and fills in Swarm's defaults.
    pub fn from_request(request: SwarmInitRequest) -> Result<Self, SwarmError> {
        let listen_addr = parse_listen_addr(request.listen_addr.as_deref().unwrap_or(""))?;
        let advertise = match request.advertise_addr.as_deref().filter(|a| !a.is_empty()) {
            Some(addr) => parse_advertise_addr(addr)?,
            None if !listen_addr.ip().is_unspecified() => Advertise {
                ip: listen_addr.ip(),
                port: None,
            },
            None => Advertise {
                ip: only_interface_address()?,
                port: None,
            },
        };
        let data_path_port = match request.data_path_port.unwrap_or(0) {
            0 => DEFAULT_DATA_PATH_PORT,
            port @ 1024..=49151 => port as u16,
            port => {
                return Err(invalid(format!(
                    "data path port {port} must be within range 1024 to 49151"
                )));
            }
        };
        let pools = request.default_addr_pool.unwrap_or_default();
        let default_addr_pool = if pools.is_empty() {
            vec!["10.0.0.0/8".to_string()]
        } else {
            pools
        };
        let subnet_size = request.subnet_size.filter(|&s| s != 0).unwrap_or(24);
        for pool in &default_addr_pool {
            let net: ipnetwork::Ipv4Network = pool
                .parse()
                .map_err(|e| invalid(format!("invalid default address pool {pool}: {e}")))?;
            if u32::from(net.prefix()) > subnet_size || subnet_size > 29 {
                return Err(invalid(format!(
                    "invalid subnet size {subnet_size} for pool {pool}: it must be between the pool's prefix length and 29"
                )));
            }
        }
        Ok(InitSettings {
            advertise,
            listen_addr,
            default_addr_pool,
            subnet_size,
            data_path_port,
            availability: NodeSpecAvailabilityEnum::ACTIVE,
            spec: with_defaults(request.spec.unwrap_or_default()),
        })
    }
}

fn invalid(message: String) -> SwarmError {
    SwarmError::InvalidArgument(message)
}

/// `0.0.0.0:2377` style; a missing port means 2377, as docker.
fn parse_listen_addr(addr: &str) -> Result<SocketAddr, SwarmError> {
    if addr.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], CONTROL_PORT)));
    }
    if let Ok(socket) = addr.parse() {
        return Ok(socket);
    }
    let ip = resolve_ip(addr).map_err(|_| invalid(format!("invalid listen address {addr}")))?;
    Ok(SocketAddr::new(ip, CONTROL_PORT))
}

/// An IP, `IP:port` or an interface name, as `--advertise-addr` accepts.
fn parse_advertise_addr(addr: &str) -> Result<Advertise, SwarmError> {
    let (host, port) = match addr.parse::<SocketAddr>() {
        Ok(socket) => (socket.ip().to_string(), Some(socket.port())),
        Err(_) => (addr.to_string(), None),
    };
    let ip = resolve_ip(&host).map_err(|_| {
        invalid(format!("advertise address must be a non-zero IP address or network interface (with optional port number), not {addr}"))
    })?;
    if ip.is_unspecified() {
        return Err(invalid(format!(
            "advertise address must be a non-zero IP address, not {addr}"
        )));
    }
    Ok(Advertise { ip, port })
}

fn resolve_ip(host: &str) -> Result<IpAddr, ()> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let addrs = host::interface_addresses();
    let mut on_interface = addrs
        .iter()
        .filter(|(name, _)| name == host)
        .map(|(_, ip)| *ip);
    match (on_interface.next(), on_interface.next()) {
        (Some(ip), None) => Ok(ip),
        _ => Err(()),
    }
}

/// The address this host uses to reach `remote`: what docker advertises when told nothing.
/// Connecting a UDP socket sends nothing; it only asks the kernel for the route.
pub fn route_source(remote: &str) -> Result<IpAddr, SwarmError> {
    let socket =
        std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| SwarmError::Internal(e.into()))?;
    socket
        .connect(remote)
        .and_then(|_| socket.local_addr())
        .map(|local| local.ip())
        .map_err(|e| {
            invalid(format!(
                "cannot find a route to {remote}: {e}; specify --advertise-addr"
            ))
        })
}

/// Docker's choice when no address is given: the one address of the one interface.
fn only_interface_address() -> Result<IpAddr, SwarmError> {
    let addrs = host::interface_addresses();
    match addrs.as_slice() {
        [(_, ip)] => Ok(*ip),
        [] => Err(invalid(
            "could not find the system's IP address - specify one with --advertise-addr".into(),
        )),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|(name, ip)| format!("{ip} on {name}"))
                .collect();
            Err(invalid(format!(
                "could not choose an IP address to advertise since this system has multiple addresses on different interfaces ({}) - specify one with --advertise-addr",
                list.join(" and ")
            )))
        }
    }
}

/// Fills what the request left zero with Swarm's defaults.
pub fn with_defaults(mut spec: SwarmSpec) -> SwarmSpec {
    if spec.name.as_deref().is_none_or(str::is_empty) {
        spec.name = Some("default".into());
    }
    spec.labels.get_or_insert_with(HashMap::new);
    let orchestration = spec
        .orchestration
        .get_or_insert_with(SwarmSpecOrchestration::default);
    orchestration.task_history_retention_limit.get_or_insert(5);
    let raft = spec.raft.get_or_insert_with(SwarmSpecRaft::default);
    raft.snapshot_interval = Some(raft.snapshot_interval.filter(|&n| n > 0).unwrap_or(10_000));
    raft.keep_old_snapshots.get_or_insert(0);
    raft.log_entries_for_slow_followers = Some(
        raft.log_entries_for_slow_followers
            .filter(|&n| n > 0)
            .unwrap_or(500),
    );
    raft.election_tick = Some(raft.election_tick.filter(|&n| n > 0).unwrap_or(10));
    raft.heartbeat_tick = Some(raft.heartbeat_tick.filter(|&n| n > 0).unwrap_or(1));
    let dispatcher = spec
        .dispatcher
        .get_or_insert_with(SwarmSpecDispatcher::default);
    dispatcher.heartbeat_period = Some(
        dispatcher
            .heartbeat_period
            .filter(|&n| n > 0)
            .unwrap_or(5_000_000_000),
    );
    let ca = spec
        .ca_config
        .get_or_insert_with(SwarmSpecCaConfig::default);
    ca.node_cert_expiry = Some(
        ca.node_cert_expiry
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_CERT_EXPIRY.as_nanos() as i64),
    );
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(advertise: &str) -> SwarmInitRequest {
        SwarmInitRequest {
            advertise_addr: Some(advertise.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_match_swarm() {
        let settings = InitSettings::from_request(request("192.0.2.1")).unwrap();
        assert_eq!(settings.listen_addr, "0.0.0.0:2377".parse().unwrap());
        assert_eq!(settings.data_path_port, 4789);
        assert_eq!(settings.default_addr_pool, vec!["10.0.0.0/8"]);
        assert_eq!(settings.subnet_size, 24);
        let raft = settings.spec.raft.unwrap();
        assert_eq!(
            (raft.election_tick, raft.heartbeat_tick),
            (Some(10), Some(1))
        );
        assert_eq!(
            settings.spec.dispatcher.unwrap().heartbeat_period,
            Some(5_000_000_000)
        );
    }

    #[test]
    fn advertise_address_may_carry_a_port() {
        let settings = InitSettings::from_request(request("192.0.2.1:2378")).unwrap();
        assert_eq!(
            settings.advertise.ip,
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(settings.advertise.control_addr(4000).port(), 2378);
        let plain = InitSettings::from_request(request("192.0.2.1")).unwrap();
        assert_eq!(plain.advertise.control_addr(4000).port(), 4000);
    }

    #[test]
    fn bad_settings_are_refused_with_reasons() {
        let err = |r: SwarmInitRequest| InitSettings::from_request(r).err().unwrap().to_string();
        assert!(err(request("0.0.0.0")).contains("non-zero IP address"));
        assert!(err(request("no-such-interface")).contains("network interface"));
        let port = SwarmInitRequest {
            data_path_port: Some(80),
            ..request("192.0.2.1")
        };
        assert!(err(port).contains("1024 to 49151"));
        let pool = SwarmInitRequest {
            default_addr_pool: Some(vec!["10.0.0.0/33".into()]),
            ..request("192.0.2.1")
        };
        assert!(err(pool).contains("invalid default address pool"));
    }
}
