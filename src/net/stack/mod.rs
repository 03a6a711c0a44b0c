//! The daemon's own presence on an overlay: a smoltcp interface holding one address on the
//! network, whose frames go through a device on the network's bridge (a TAP beside the overlay
//! engine's), so they reach tasks on this node through the bridge and tasks elsewhere through
//! the engine. The routing mesh opens its connections to backends from here; the VIP balancer
//! also takes traffic for other addresses here ([`Stack::claim`]).

mod claims;
mod device;
mod ports;

use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketSet};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

pub use claims::Claims;
pub use device::{DeviceDrops, DirectPath, FrameDevice, FrameFd, underlay_socket};
pub use ports::LocalPorts;

use crate::net::routes::{NetworkInfo, mac_for};

/// One address on one overlay network, as a smoltcp interface with its sockets.
pub struct Stack {
    /// The interface.
    pub iface: Interface,
    /// Its device.
    pub device: FrameDevice,
    /// Its sockets.
    pub sockets: SocketSet<'static>,
    /// Free local ports for TCP connections.
    pub tcp_ports: LocalPorts,
    /// Free local ports for UDP flows.
    pub udp_ports: LocalPorts,
    address: Ipv4Addr,
    epoch: std::time::Instant,
}

impl Stack {
    /// A stack at `address` on `network`, sending and receiving through `link`. Its MAC is
    /// [`mac_for`] the address, as the other nodes expect.
    pub fn new(network: &NetworkInfo, address: Ipv4Addr, link: FrameFd) -> Stack {
        let mut device = FrameDevice::new(link, network.mtu);
        let mac = EthernetAddress(mac_for(address));
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        config.random_seed = rand::random();
        let epoch = std::time::Instant::now();
        let mut iface = Interface::new(config, &mut device, Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            let cidr = IpCidr::new(address.into(), network.subnet.prefix());
            addrs.push(cidr).expect("room for the first address");
        });
        Stack {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            tcp_ports: LocalPorts::new(),
            udp_ports: LocalPorts::new(),
            address,
            epoch,
        }
    }

    /// The stack's address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The device's descriptor, for polling.
    pub fn fd(&self) -> RawFd {
        self.device.fd()
    }

    /// smoltcp's clock: time since the stack was made.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// Takes in every frame waiting on the device and sends what the sockets have queued;
    /// whether any socket's state may have changed.
    pub fn poll(&mut self) -> bool {
        let now = self.now();
        let changed = self.iface.poll(now, &mut self.device, &mut self.sockets)
            == PollResult::SocketStateChanged;
        self.device.flush();
        changed
    }

    /// Takes in every frame waiting on the device; whether any socket's state may have changed.
    /// (Call it when the device said it is readable: it reads until the device is empty.)
    pub fn ingress(&mut self) -> bool {
        let mut changed = false;
        while let Some(frame_changed) = self.ingress_one() {
            changed |= frame_changed;
        }
        self.device.flush();
        changed
    }

    /// Takes in one frame (the one [`FrameDevice::fetch`] kept, if any): `None` when there was
    /// none, else whether any socket's state may have changed. What it sends (an ACK, say) waits
    /// for the next [`Stack::egress`], [`Stack::ingress`] or [`Stack::poll`] to flush it.
    pub fn ingress_one(&mut self) -> Option<bool> {
        let now = self.now();
        match self
            .iface
            .poll_ingress_single(now, &mut self.device, &mut self.sockets)
        {
            PollIngressSingleResult::None => None,
            PollIngressSingleResult::PacketProcessed => Some(false),
            PollIngressSingleResult::SocketStateChanged => Some(true),
        }
    }

    /// Takes traffic for `others` too, besides the stack's own address: smoltcp's AnyIP accepts
    /// packets to any address (in 0.14 it no longer asks for a route to them) and answers ARP
    /// for any, so the device lets in only what is for these (see [`Claims`]). Called again,
    /// replaces the set.
    pub fn claim(&mut self, others: impl IntoIterator<Item = Ipv4Addr>) {
        self.iface.set_any_ip(true);
        let own = self.address;
        let claims = Claims::new(mac_for(own), others.into_iter().chain([own]));
        self.device.set_claims(Some(claims));
    }

    /// Sends what the sockets have queued, without reading the device; whether any socket's
    /// state may have changed.
    pub fn egress(&mut self) -> bool {
        let now = self.now();
        let mut changed = false;
        while self
            .iface
            .poll_egress(now, &mut self.device, &mut self.sockets)
            == PollResult::SocketStateChanged
        {
            changed = true;
        }
        self.device.flush();
        changed
    }

    /// How long until the stack must be polled again (a retransmission, say) if no frame comes.
    pub fn poll_delay(&mut self) -> Option<std::time::Duration> {
        let now = self.now();
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| std::time::Duration::from_micros(d.total_micros()))
    }

    /// A millisecond clock for TCP timestamps, which let a backend's TIME-WAIT accept a new
    /// connection on a recently used local port (RFC 6191).
    pub fn tcp_timestamp() -> u32 {
        use std::sync::OnceLock;
        static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
        let epoch = EPOCH.get_or_init(std::time::Instant::now);
        // Starts at 1: zero means "no timestamp" on the wire.
        (epoch.elapsed().as_millis() as u32).wrapping_add(1)
    }
}
