//! The names one overlay network answers, with their records encoded once per route table.

use std::collections::HashMap;
use std::iter::{Chain, once};
use std::net::{IpAddr, Ipv4Addr};
use std::slice::Iter;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use ipnetwork::Ipv4Network;

use crate::net::routes::NetworkRoutes;

/// TTL of a VIP: it stays the service's address on the network for the service's whole life.
const VIP_TTL: u32 = 600;

/// TTL of a task address: none, so that no cache between the task and us keeps an address after
/// its task dies (docker gives 600 and its clients dial dead tasks for up to ten minutes).
const TASK_TTL: u32 = 0;

/// Every answer's records name their owner with this compression pointer (RFC 1035 4.1.4) to
/// offset 12, where the reply's question, and so the name asked for, begins.
const OWNER_IS_QUESTION: [u8; 2] = [0xC0, 12];

/// The names one overlay network answers, built once per installed route table (not per query).
pub struct Zone {
    /// Every name the network answers, fully qualified; hickory compares and hashes names
    /// case-insensitively.
    names: HashMap<Name, Records>,
    /// The network's subnet: reverse names inside it are ours even when nothing holds the address.
    subnet: Ipv4Network,
    /// Where the next answer starts in its list of records, so that clients spread over them.
    turn: AtomicUsize,
}

/// The records of one name, all of one type.
struct Records {
    /// A for a service's names, PTR for a reverse name.
    rtype: RecordType,
    /// Each record encoded whole (owner [`OWNER_IS_QUESTION`]), ready to copy into a reply.
    encoded: Vec<Box<[u8]>>,
}

/// What a zone knows of one name.
pub(super) enum Lookup<'z> {
    /// A cluster name with records of this type, in the order to send them.
    Records(RecordType, Rotated<'z>),
    /// A cluster name that has no address now (a `dnsrr` service or `tasks.` name without running
    /// tasks), or the reverse name of an address of the network that nothing holds: NXDOMAIN,
    /// rather than asking resolvers outside that cannot know better.
    NoSuchName,
    /// Not a name of the cluster.
    NotOurs,
}

/// A name's encoded records from some record on, wrapping round to the first.
pub(super) type Rotated<'z> = Chain<Iter<'z, Box<[u8]>>, Iter<'z, Box<[u8]>>>;

impl Zone {
    /// The names of the services on `routes`' network and the reverse names of their addresses.
    ///
    /// A name that DNS cannot carry (a label over 63 bytes, say) is left out. A name that several
    /// services answer to (a shared network alias) answers all their addresses, as with docker.
    pub fn new(routes: &NetworkRoutes) -> Zone {
        let mut zone = Zone {
            names: HashMap::new(),
            subnet: routes.info.subnet,
            turn: AtomicUsize::new(0),
        };
        for service in routes.services.values() {
            // Docker's service names are DNS labels; a service whose name is not answers nothing.
            let Some(own) = fqdn(&service.name) else {
                continue;
            };
            let mut names = vec![own.clone()];
            names.extend(service.aliases.iter().filter_map(|alias| fqdn(alias)));
            names.sort();
            names.dedup();
            let tasks: Vec<Ipv4Addr> = service.tasks.iter().map(|task| task.address).collect();
            for name in &names {
                match service.vip {
                    Some(vip) => zone.add_addresses(name, &[vip], VIP_TTL),
                    None => zone.add_addresses(name, &tasks, TASK_TTL),
                }
                if let Some(tasks_name) = tasks_name(name) {
                    zone.add_addresses(&tasks_name, &tasks, TASK_TTL);
                }
            }
            // Each address points back at a name whose answer holds it.
            let task_target = match service.vip {
                Some(vip) => {
                    zone.add_pointer(vip, &own, VIP_TTL);
                    tasks_name(&own)
                }
                None => Some(own),
            };
            if let Some(target) = task_target {
                for &task in &tasks {
                    zone.add_pointer(task, &target, TASK_TTL);
                }
            }
        }
        zone
    }

    /// What the zone answers for `name`; each call with several records starts at the next one.
    pub(super) fn lookup(&self, name: &Name) -> Lookup<'_> {
        match self.names.get(name) {
            Some(records) if records.encoded.is_empty() => Lookup::NoSuchName,
            Some(records) => {
                let turn = self.turn.fetch_add(1, Ordering::Relaxed);
                let (tail, head) = records.encoded.split_at(turn % records.encoded.len());
                Lookup::Records(records.rtype, head.iter().chain(tail))
            }
            None if self.is_reverse_of_subnet(name) => Lookup::NoSuchName,
            None => Lookup::NotOurs,
        }
    }

    /// Whether `name` is the reverse name (`d.c.b.a.in-addr.arpa.`) of an address in the subnet.
    fn is_reverse_of_subnet(&self, name: &Name) -> bool {
        match name.parse_arpa_name() {
            Ok(net) if net.prefix_len() == 32 => {
                matches!(net.addr(), IpAddr::V4(address) if self.subnet.contains(address))
            }
            _ => false,
        }
    }

    /// Adds A records of `addresses` to `name` (which exists from then on, even with none).
    fn add_addresses(&mut self, name: &Name, addresses: &[Ipv4Addr], ttl: u32) {
        let encoded = addresses
            .iter()
            .map(|a| record(RecordType::A, ttl, &a.octets()));
        self.add(name, RecordType::A, encoded);
    }

    /// Adds a PTR record from `address`'s reverse name to `target`.
    fn add_pointer(&mut self, address: Ipv4Addr, target: &Name, ttl: u32) {
        // A name encodes without compression when alone in its buffer, as rdata must be here.
        let Ok(rdata) = target.to_bytes() else {
            return;
        };
        let encoded = record(RecordType::PTR, ttl, &rdata);
        self.add(&Name::from(address), RecordType::PTR, once(encoded));
    }

    /// Adds `encoded` records of type `rtype` to `name`. A name that already has records of
    /// another type keeps them alone: a service named like a reverse name does not get its PTR.
    fn add(&mut self, name: &Name, rtype: RecordType, encoded: impl Iterator<Item = Box<[u8]>>) {
        let records = self.names.entry(name.clone()).or_insert(Records {
            rtype,
            encoded: Vec::new(),
        });
        if records.rtype == rtype {
            records.encoded.extend(encoded);
        }
    }
}

/// `name` as a fully qualified domain name, if it is one.
fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(name)
        .ok()?
        .append_domain(&Name::root())
        .ok()
}

/// `tasks.<name>`, if it is short enough to be a name.
fn tasks_name(name: &Name) -> Option<Name> {
    name.prepend_label("tasks").ok()
}

/// One resource record of class IN (RFC 1035 4.1.3) owned by the question's name.
fn record(rtype: RecordType, ttl: u32, rdata: &[u8]) -> Box<[u8]> {
    let rdata_len = u16::try_from(rdata.len()).expect("rdata of an A or a PTR is short");
    let mut record = Vec::with_capacity(12 + rdata.len());
    record.extend(OWNER_IS_QUESTION);
    record.extend(u16::from(rtype).to_be_bytes());
    record.extend(u16::from(DNSClass::IN).to_be_bytes());
    record.extend(ttl.to_be_bytes());
    record.extend(rdata_len.to_be_bytes());
    record.extend(rdata);
    record.into()
}
