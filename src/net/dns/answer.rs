//! One query in, one reply out: parsed with hickory, written into the caller's buffer.

use std::iter::empty;

use hickory_proto::op::{Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::zone::{Lookup, Zone};

/// Size of a DNS header (RFC 1035 4.1.1); the question follows it.
const HEADER_LEN: usize = 12;

/// The largest reply over UDP to a client that offers no more (RFC 1035 4.2.1), and the least
/// room a reply buffer must have: a header, the longest question and an OPT record fit in it.
const UDP_LIMIT: usize = 512;

/// The OPT record (RFC 6891 6.1.2) of a reply to a query that has one: the root name, type OPT,
/// the UDP payload we take (1232 bytes, an unfragmented datagram on nearly every path, the DNS
/// flag day 2020 value) in place of the class, extended code, version and flags 0, no options.
const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0];

/// Header flags (RFC 1035 4.1.1): a response, authoritative, truncated; recursion available.
const QR: u8 = 0x80;
const AA: u8 = 0x04;
const TC: u8 = 0x02;
const RA: u8 = 0x80;

/// What to do with one datagram received on the gateway's port 53.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A reply of this many bytes was written to `out`: send it back to the client.
    Reply(usize),
    /// Not a cluster name: forward the query to the node's resolvers (see
    /// [`Forwarder`](super::Forwarder)).
    Forward,
    /// Not a DNS query at all (too short, a response, unparsable): drop it and count it.
    Malformed,
}

/// Answers `query`, received over UDP, from `zone` into `out`, or says why it cannot.
///
/// A cluster name is answered with NOERROR and its records when the question asks for their
/// type (or ANY); with NOERROR and no records for any other type (AAAA, say), so that the client
/// neither waits nor asks elsewhere; with NXDOMAIN when the name has no address now. A reply
/// holds at most 512 bytes, or what the query's EDNS record offers, up to `out`'s length; records
/// that do not fit are left out and the reply marked truncated (TC), upon which the client asks
/// again over TCP ([`answer_tcp`]).
///
/// # Panics
///
/// If `out` is shorter than 512 bytes.
pub fn answer(zone: &Zone, query: &[u8], out: &mut [u8]) -> Outcome {
    respond(zone, query, out, Transport::Udp)
}

/// As [`answer`], for a query received over TCP (without its two-byte length prefix): the reply
/// may fill `out`, up to the 65535 bytes a length prefix can count, whatever the query offers.
///
/// # Panics
///
/// If `out` is shorter than 512 bytes.
pub fn answer_tcp(zone: &Zone, query: &[u8], out: &mut [u8]) -> Outcome {
    respond(zone, query, out, Transport::Tcp)
}

/// The transport a query came over, which bounds the length of its reply.
#[derive(Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

/// Answers `query`, received over `transport`, from `zone` into `out`.
fn respond(zone: &Zone, query: &[u8], out: &mut [u8], transport: Transport) -> Outcome {
    let (echo, question) = match parse(query) {
        None => return Outcome::Malformed,
        Some(Parsed::Refused(echo, rcode)) => {
            return Outcome::Reply(echo.write(rcode, false, empty(), out));
        }
        Some(Parsed::Question(echo, question)) => (echo, question),
    };
    // Over UDP, 512 bytes or the client's EDNS offer; over TCP, what a length prefix counts.
    let limit = match transport {
        Transport::Udp => echo.edns.map_or(UDP_LIMIT, usize::from).max(UDP_LIMIT),
        Transport::Tcp => usize::from(u16::MAX),
    };
    let room = limit.min(out.len());
    let out = &mut out[..room];
    let len = match zone.lookup(question.name()) {
        Lookup::NotOurs => return Outcome::Forward,
        Lookup::NoSuchName => echo.write(ResponseCode::NXDomain, true, empty(), out),
        Lookup::Records(rtype, records) => {
            let class = question.query_class();
            let qtype = question.query_type();
            let wanted = matches!(class, DNSClass::IN | DNSClass::ANY)
                && (qtype == rtype || qtype == RecordType::ANY);
            let records = records.filter(|_| wanted).map(|record| &record[..]);
            echo.write(ResponseCode::NoError, true, records, out)
        }
    };
    Outcome::Reply(len)
}

/// Writes into `out` a SERVFAIL reply to `query` (for a forward that failed or timed out);
/// `None` if `query` is not a query.
///
/// # Panics
///
/// If `out` is shorter than 512 bytes.
pub fn servfail(query: &[u8], out: &mut [u8]) -> Option<usize> {
    let (Parsed::Question(echo, _) | Parsed::Refused(echo, _)) = parse(query)?;
    Some(echo.write(ResponseCode::ServFail, false, empty(), out))
}

/// A query, read as far as answering it needs.
enum Parsed<'q> {
    /// A standard query with its one question.
    Question(Echo<'q>, Query),
    /// A query to refuse with this code without reading its question: not a standard query
    /// (NOTIMP), or not exactly one question (FORMERR), as resolvers answer them.
    Refused(Echo<'q>, ResponseCode),
}

/// What a reply repeats of its query.
struct Echo<'q> {
    /// The query's header: its ID, opcode and recursion-desired flag go back.
    header: Header,
    /// The question section as received (empty when not read): the client checks it, and the
    /// answers' owner names point at it.
    question: &'q [u8],
    /// The UDP payload size offered by the query's OPT record, if it has one.
    edns: Option<u16>,
}

/// Reads `query`; `None` if it is not a DNS query.
fn parse(query: &[u8]) -> Option<Parsed<'_>> {
    let mut decoder = BinDecoder::new(query);
    let header = Header::read(&mut decoder).ok()?;
    // Answering a response could start an endless exchange with whoever sent it.
    if header.message_type() != MessageType::Query {
        return None;
    }
    let mut echo = Echo {
        header,
        question: &[],
        edns: None,
    };
    if header.op_code() != OpCode::Query {
        return Some(Parsed::Refused(echo, ResponseCode::NotImp));
    }
    if header.query_count() != 1 {
        return Some(Parsed::Refused(echo, ResponseCode::FormErr));
    }
    let question = Query::read(&mut decoder).ok()?;
    echo.question = &query[HEADER_LEN..decoder.index()];
    // A name compressed into a pointer to the header would mean something else in the reply,
    // whose header differs; nothing but a forged query has one (no name comes before it).
    let name_len: usize = question.name().iter().map(|label| 1 + label.len()).sum();
    if echo.question.len() != name_len + 1 + 4 {
        return None;
    }
    // The OPT record is in the additional section, after any records a query should not have.
    let records = u32::from(header.answer_count())
        + u32::from(header.name_server_count())
        + u32::from(header.additional_count());
    for _ in 0..records {
        if let DNSClass::OPT(offer) = Record::read(&mut decoder).ok()?.dns_class() {
            echo.edns = Some(offer);
        }
    }
    Some(Parsed::Question(echo, question))
}

impl Echo<'_> {
    /// Writes the reply with `rcode` and as many of `records` as fit into `out` (all of it);
    /// returns its length.
    fn write<'r>(
        &self,
        rcode: ResponseCode,
        authoritative: bool,
        records: impl Iterator<Item = &'r [u8]>,
        out: &mut [u8],
    ) -> usize {
        assert!(out.len() >= UDP_LIMIT, "a DNS reply buffer holds 512 bytes");
        let opt_len = if self.edns.is_some() { OPT.len() } else { 0 };
        let room = out.len() - opt_len;
        let mut len = put(out, HEADER_LEN, self.question);
        let (mut answers, mut truncated) = (0u16, false);
        for record in records {
            if len + record.len() > room {
                truncated = true;
                break;
            }
            len = put(out, len, record);
            answers += 1;
        }
        if self.edns.is_some() {
            len = put(out, len, &OPT);
        }
        let header = &self.header;
        let mut flags = QR | u8::from(header.op_code()) << 3 | u8::from(header.recursion_desired());
        if authoritative {
            flags |= AA;
        }
        if truncated {
            flags |= TC;
        }
        let counts = [
            u16::from(!self.question.is_empty()),
            answers,
            0,
            u16::from(self.edns.is_some()),
        ];
        put(out, 0, &header.id().to_be_bytes());
        put(out, 2, &[flags, RA | rcode.low()]);
        for (i, count) in counts.into_iter().enumerate() {
            put(out, 4 + 2 * i, &count.to_be_bytes());
        }
        len
    }
}

/// Copies `bytes` into `out` at `at`; returns where they end.
fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    let end = at + bytes.len();
    out[at..end].copy_from_slice(bytes);
    end
}
