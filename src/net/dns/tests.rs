//! Zone and answer tests: a network's services built by hand, queries and replies with hickory.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Outcome, Zone, answer, answer_tcp, servfail};
use crate::net::routes::{Backend, NetworkInfo, NetworkRoutes, ServiceRoutes};

/// `10.0.1.<last>`, the test network's addresses.
fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, last)
}

/// A service on the test network with `vip` (none: dnsrr) and tasks at the `tasks` addresses.
fn service(name: &str, aliases: &[&str], vip: Option<u8>, tasks: &[u8]) -> ServiceRoutes {
    ServiceRoutes {
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        vip: vip.map(ip),
        tasks: tasks
            .iter()
            .map(|&last| Backend {
                task_id: format!("task{last}"),
                address: ip(last),
            })
            .collect(),
    }
}

/// The test network 10.0.1.0/24 with `services`.
fn routes(services: Vec<ServiceRoutes>) -> NetworkRoutes {
    NetworkRoutes {
        info: NetworkInfo {
            id: "net".into(),
            name: "app_default".into(),
            vni: 4096,
            subnet: "10.0.1.0/24".parse().unwrap(),
            gateway: ip(1),
            mtu: 1450,
        },
        endpoints: BTreeMap::new(),
        services: services
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("svc{i}"), s))
            .collect(),
    }
}

/// A stack's services: a web service behind a VIP, a dnsrr database, and some without tasks.
fn zone() -> Zone {
    Zone::new(&routes(vec![
        service("app_web", &["web", "shared"], Some(2), &[10, 11]),
        service("app_db", &["db", "DB"], None, &[20, 21]),
        service("app_cache", &["cache", "shared"], Some(5), &[]),
        service("idle", &[], None, &[]),
        service(&"x".repeat(70), &["long"], Some(6), &[60]),
    ]))
}

/// A query for `name` of `rtype` with ID 0x1234, recursion desired. (`name` need not end in a
/// dot: names on the wire are all fully qualified.)
fn query(name: &str, rtype: RecordType) -> Message {
    let name = Name::from_ascii(name).unwrap();
    let name = name.append_domain(&Name::root()).unwrap();
    let mut message = Message::new();
    message
        .set_id(0x1234)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, rtype));
    message
}

/// What `zone` does with `message`, and the reply parsed if there is one.
fn ask_message(zone: &Zone, message: &Message) -> (Outcome, Option<Message>) {
    let mut out = [0; 512];
    let outcome = answer(zone, &message.to_vec().unwrap(), &mut out);
    let reply = match outcome {
        Outcome::Reply(len) => Some(Message::from_vec(&out[..len]).unwrap()),
        _ => None,
    };
    (outcome, reply)
}

/// The reply of `zone` to a query for `name` of `rtype`, checked to be one to that query.
fn ask(zone: &Zone, name: &str, rtype: RecordType) -> Message {
    let query = query(name, rtype);
    let (_, reply) = ask_message(zone, &query);
    let reply = reply.unwrap_or_else(|| panic!("no reply for {name}"));
    assert_eq!(reply.id(), 0x1234);
    assert_eq!(reply.message_type(), MessageType::Response);
    assert!(reply.recursion_desired() && reply.recursion_available());
    assert_eq!(reply.queries(), query.queries());
    reply
}

/// The addresses of a reply's A records, sorted, with their TTLs.
fn addresses(reply: &Message) -> Vec<(Ipv4Addr, u32)> {
    let mut found: Vec<_> = reply
        .answers()
        .iter()
        .map(|record| match record.data() {
            RData::A(a) => (a.0, record.ttl()),
            other => panic!("not an A record: {other:?}"),
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_service_answers_its_vip_with_a_long_ttl() {
    let zone = zone();
    for name in ["app_web", "web", "web.", "WEB", "App_Web."] {
        let reply = ask(&zone, name, RecordType::A);
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(reply.authoritative());
        assert_eq!(addresses(&reply), [(ip(2), 600)], "{name}");
        // The owner is the name as asked, case included (a pointer to the question).
        let owner = reply.answers()[0].name().to_ascii();
        assert_eq!(owner, reply.queries()[0].name().to_ascii());
    }
    // A VIP answers even while the service has no task: it exists for the service's life.
    assert_eq!(
        addresses(&ask(&zone, "cache", RecordType::A)),
        [(ip(5), 600)]
    );
}

#[test]
fn tasks_names_answer_every_running_task_with_no_ttl() {
    let zone = zone();
    let both = [(ip(10), 0), (ip(11), 0)];
    for name in ["tasks.app_web", "tasks.web", "Tasks.Web."] {
        assert_eq!(addresses(&ask(&zone, name, RecordType::A)), both, "{name}");
    }
    let db = [(ip(20), 0), (ip(21), 0)];
    assert_eq!(addresses(&ask(&zone, "tasks.db", RecordType::A)), db);
}

#[test]
fn a_dnsrr_service_answers_its_tasks_starting_with_each_in_turn() {
    let zone = zone();
    let first = |reply: Message| match reply.answers()[0].data() {
        RData::A(a) => a.0,
        other => panic!("not an A record: {other:?}"),
    };
    let one = ask(&zone, "db", RecordType::A);
    assert_eq!(addresses(&one), [(ip(20), 0), (ip(21), 0)]);
    let two = ask(&zone, "app_db", RecordType::A);
    assert_ne!(first(one), first(two));
}

#[test]
fn a_name_shared_by_services_answers_all_their_vips() {
    let reply = ask(&zone(), "shared", RecordType::A);
    assert_eq!(addresses(&reply), [(ip(2), 600), (ip(5), 600)]);
}

#[test]
fn names_without_a_running_task_do_not_exist() {
    let zone = zone();
    for (name, rtype) in [
        ("idle", RecordType::A),
        ("idle", RecordType::AAAA),
        ("tasks.idle", RecordType::A),
        ("tasks.cache", RecordType::A),
    ] {
        let reply = ask(&zone, name, rtype);
        assert_eq!(reply.response_code(), ResponseCode::NXDomain, "{name}");
        assert!(reply.answers().is_empty() && reply.authoritative());
    }
}

#[test]
fn other_types_of_a_cluster_name_get_no_answer_and_no_error() {
    let zone = zone();
    for rtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let reply = ask(&zone, "web", rtype);
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(reply.answers().is_empty(), "{rtype}");
    }
    assert_eq!(
        addresses(&ask(&zone, "web", RecordType::ANY)),
        [(ip(2), 600)]
    );
}

#[test]
fn reverse_names_point_back_at_a_name_that_answers_the_address() {
    let zone = zone();
    let pointer = |last: u8| {
        let name = Name::from(IpAddr::V4(ip(last))).to_ascii();
        let reply = ask(&zone, &name, RecordType::PTR);
        match reply.answers() {
            [record] => match record.data() {
                RData::PTR(target) => (target.0.to_ascii(), record.ttl()),
                other => panic!("not a PTR record: {other:?}"),
            },
            _ => (reply.response_code().to_string(), 0),
        }
    };
    assert_eq!(pointer(2), ("app_web.".into(), 600));
    assert_eq!(pointer(10), ("tasks.app_web.".into(), 0));
    assert_eq!(pointer(20), ("app_db.".into(), 0));
    // An address of the network that no service holds (the gateway) is ours to deny.
    assert_eq!(pointer(1), (ResponseCode::NXDomain.to_string(), 0));
    // Addresses elsewhere are for the node's resolvers.
    let outside = query("8.8.8.8.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ask_message(&zone, &outside).0, Outcome::Forward);
}

#[test]
fn other_names_are_forwarded() {
    let zone = zone();
    for name in ["example.com.", "tasks.unknown", "web.example.com", "tasks"] {
        let query = query(name, RecordType::A);
        assert_eq!(ask_message(&zone, &query).0, Outcome::Forward, "{name}");
    }
    // A service whose name DNS cannot carry is left out, with all its names.
    let query = query("long", RecordType::A);
    assert_eq!(ask_message(&zone, &query).0, Outcome::Forward);
}

#[test]
fn a_zone_built_from_a_newer_table_forgets_a_task_at_once() {
    let before = Zone::new(&routes(vec![service("web", &[], None, &[10, 11])]));
    let after = Zone::new(&routes(vec![service("web", &[], None, &[11])]));
    let both = [(ip(10), 0), (ip(11), 0)];
    assert_eq!(addresses(&ask(&before, "tasks.web", RecordType::A)), both);
    assert_eq!(
        addresses(&ask(&after, "tasks.web", RecordType::A)),
        [both[1]]
    );
    assert_eq!(addresses(&ask(&after, "web", RecordType::A)), [both[1]]);
    let gone = Name::from(IpAddr::V4(ip(10))).to_ascii();
    let reply = ask(&after, &gone, RecordType::PTR);
    assert_eq!(reply.response_code(), ResponseCode::NXDomain);
}

#[test]
fn queries_a_resolver_refuses_get_notimp_or_formerr() {
    let zone = zone();
    let mut update = query("web", RecordType::A);
    update.set_op_code(OpCode::Update);
    let mut two = query("web", RecordType::A);
    two.add_query(Query::query(Name::from_ascii("db").unwrap(), RecordType::A));
    let mut none = query("web", RecordType::A);
    none.take_queries();
    for (message, rcode) in [
        (update, ResponseCode::NotImp),
        (two, ResponseCode::FormErr),
        (none, ResponseCode::FormErr),
    ] {
        let reply = ask_message(&zone, &message).1.unwrap();
        assert_eq!(reply.response_code(), rcode);
        assert_eq!((reply.id(), reply.op_code()), (0x1234, message.op_code()));
        assert!(reply.queries().is_empty() && reply.answers().is_empty());
    }
}

#[test]
fn a_long_answer_is_truncated_to_what_the_client_takes() {
    let lasts: Vec<u8> = (100..160).collect();
    let zone = Zone::new(&routes(vec![service("big", &[], None, &lasts)]));
    let mut out = [0; 4096];
    let mut ask_big = |edns: Option<u16>, room: usize, tcp: bool| {
        let mut message = query("big", RecordType::A);
        if let Some(size) = edns {
            let mut opt = Edns::new();
            opt.set_max_payload(size);
            message.set_edns(opt);
        }
        let respond = if tcp { answer_tcp } else { answer };
        let Outcome::Reply(len) = respond(&zone, &message.to_vec().unwrap(), &mut out[..room])
        else {
            panic!("no reply");
        };
        assert!(len <= room);
        let reply = Message::from_vec(&out[..len]).unwrap();
        assert_eq!(reply.extensions().is_some(), edns.is_some());
        (len, reply.truncated(), reply.answers().len())
    };
    // Without EDNS, 512 bytes: a header, the question (9 bytes) and 30 records of 16 bytes.
    assert_eq!(ask_big(None, 4096, false), (12 + 9 + 30 * 16, true, 30));
    assert_eq!(
        ask_big(Some(4096), 4096, false),
        (12 + 9 + 60 * 16 + 11, false, 60)
    );
    assert_eq!(
        ask_big(Some(4096), 600, false),
        (12 + 9 + 35 * 16 + 11, true, 35)
    );
    // An offer under 512 bytes still gets 512 (RFC 6891 6.2.5).
    assert_eq!(
        ask_big(Some(100), 4096, false),
        (12 + 9 + 30 * 16 + 11, true, 30)
    );
    // Over TCP, what the buffer holds.
    assert_eq!(ask_big(None, 4096, true), (12 + 9 + 60 * 16, false, 60));
    assert_eq!(
        ask_big(Some(100), 600, true),
        (12 + 9 + 35 * 16 + 11, true, 35)
    );
}

#[test]
fn servfail_repeats_the_question() {
    let query = query("example.com", RecordType::AAAA);
    let mut out = [0; 512];
    let len = servfail(&query.to_vec().unwrap(), &mut out).unwrap();
    let reply = Message::from_vec(&out[..len]).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    assert_eq!((reply.id(), reply.queries()), (0x1234, query.queries()));
    assert_eq!(servfail(b"\x12\x34", &mut out), None);
}

#[test]
fn what_is_not_a_query_is_dropped_without_a_panic() {
    let zone = zone();
    let mut out = [0; 512];
    // A response, even to a cluster name: answering it could start an endless exchange.
    let mut response = query("web", RecordType::A);
    response.set_message_type(MessageType::Response);
    let response = response.to_vec().unwrap();
    assert_eq!(answer(&zone, &response, &mut out), Outcome::Malformed);
    // Every truncation of a real query.
    let mut full = query("tasks.web", RecordType::A);
    full.add_additional(Record::from_rdata(Name::root(), 0, RData::A(ip(9).into())));
    let full = full.to_vec().unwrap();
    for len in 0..full.len() {
        assert_eq!(
            answer(&zone, &full[..len], &mut out),
            Outcome::Malformed,
            "{len}"
        );
    }
    // Random bytes, and real queries with random bytes changed: anything but a panic, and a
    // reply, if any, that parses.
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..20_000 {
        let mut datagram = if round % 2 == 0 {
            let mut bytes = vec![0; rng.random_range(0..100)];
            rng.fill(&mut bytes[..]);
            bytes
        } else {
            full.clone()
        };
        for _ in 0..rng.random_range(1..4) {
            if let Some(byte) = datagram.get_mut(rng.random_range(0..full.len())) {
                *byte = rng.random();
            }
        }
        if let Outcome::Reply(len) = answer(&zone, &datagram, &mut out) {
            Message::from_vec(&out[..len]).unwrap();
        }
        if let Some(len) = servfail(&datagram, &mut out) {
            Message::from_vec(&out[..len]).unwrap();
        }
    }
}
