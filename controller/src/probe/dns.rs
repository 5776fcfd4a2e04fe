//! The `dns` probe: one UDP query to one DNS server, healthy when the answer holds records of
//! the asked type (and, when the scenario lists them, every expected address).
//!
//! Every check uses a fresh socket (a new random source port) and a random id, and only a
//! response from the server's own address, with that id and the question as asked, counts:
//! anything else arriving on the socket is ignored, as a stub resolver ignores it. There is no
//! retry and no fallback to TCP: a lost query is a failed sample (the probe timeout bounds it).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

use super::ProbeError;
use crate::scenario::DnsRecord;

/// The UDP payload the probe says it can take (EDNS): the size DNS flag day 2020 settled on,
/// which fits an unfragmented datagram on any path.
const UDP_PAYLOAD: u16 = 1232;

/// A lookup of one name at one server.
#[derive(Clone, Debug)]
pub struct DnsCheck {
    server: SocketAddr,
    name: Name,
    record: DnsRecord,
    expect: Vec<IpAddr>,
}

impl DnsCheck {
    /// A check asking `server` for the `record` addresses of `query`, which must include every
    /// address of `expect`.
    pub fn new(
        server: SocketAddr,
        query: &str,
        record: DnsRecord,
        expect: Vec<IpAddr>,
    ) -> Result<Self, ProbeError> {
        let mut name = Name::from_ascii(query)
            .map_err(|e| ProbeError::Unexpected(format!("invalid dns query {query:?}: {e}")))?;
        // Asked exactly as written: a probe never appends search domains.
        name.set_fqdn(true);
        Ok(Self {
            server,
            name,
            record,
            expect,
        })
    }

    /// One query and its answer; the caller bounds the wait.
    pub async fn check(&self) -> Result<(), ProbeError> {
        let id = random_id();
        let request = self.request(id).map_err(|e| {
            ProbeError::Unexpected(format!("cannot encode the query for {}: {e}", self.name))
        })?;
        let local: IpAddr = match self.server {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind((local, 0))
            .await
            .map_err(ProbeError::Connect)?;
        socket
            .send_to(&request, self.server)
            .await
            .map_err(ProbeError::Connect)?;
        // Room for more than we asked for: a server may ignore EDNS's limit.
        let mut buffer = vec![0u8; 4096];
        loop {
            let (len, from) = socket
                .recv_from(&mut buffer)
                .await
                .map_err(ProbeError::Connect)?;
            if from != self.server {
                continue;
            }
            let Ok(response) = Message::from_vec(&buffer[..len]) else {
                continue;
            };
            if self.answers(id, &response) {
                return self.evaluate(&response);
            }
        }
    }

    /// The query's wire bytes: recursion desired, EDNS with our payload size.
    fn request(&self, id: u16) -> Result<Vec<u8>, hickory_proto::ProtoError> {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        let mut message = Message::new();
        message
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(self.name.clone(), self.record_type()))
            .set_edns(edns);
        message.to_vec()
    }

    /// Whether `response` answers our query `id`: a response with that id whose question (when
    /// it repeats one, as every server but a broken one does) is ours.
    fn answers(&self, id: u16, response: &Message) -> bool {
        response.id() == id
            && response.message_type() == MessageType::Response
            && response
                .queries()
                .first()
                .is_none_or(|q| q.query_type() == self.record_type() && q.name() == &self.name)
    }

    fn record_type(&self) -> RecordType {
        match self.record {
            DnsRecord::A => RecordType::A,
            DnsRecord::Aaaa => RecordType::AAAA,
        }
    }

    /// Judges an answer to our query: the response code, the records of our type (in the
    /// answer section, wherever a CNAME chain led), and the expected addresses.
    pub fn evaluate(&self, response: &Message) -> Result<(), ProbeError> {
        let name = self.name.to_ascii();
        let name = name.strip_suffix('.').unwrap_or(&name);
        let record = self.record;
        let fail = |reason: String| -> Result<(), ProbeError> {
            Err(ProbeError::Unexpected(if response.truncated() {
                format!("{reason} (the answer was truncated; the probe does not retry over TCP)")
            } else {
                reason
            }))
        };
        match response.response_code() {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return fail(format!("NXDOMAIN: {name} does not exist")),
            ResponseCode::ServFail => return fail(format!("SERVFAIL for {name} {record}")),
            other => {
                return fail(format!(
                    "{} ({}) for {name} {record}",
                    rcode_name(other),
                    other.to_str()
                ))
            }
        }
        let answered: Vec<IpAddr> = response
            .answers()
            .iter()
            .filter(|r| r.record_type() == self.record_type())
            .filter_map(|r| r.data().ip_addr())
            .collect();
        if answered.is_empty() {
            return fail(format!("no {record} records for {name}"));
        }
        if self.expect.iter().all(|ip| answered.contains(ip)) {
            return Ok(());
        }
        fail(format!(
            "answered {}, expected {}",
            list(&answered),
            list(&self.expect)
        ))
    }
}

/// The mnemonic of a response code, as dig prints it.
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An unpredictable query id (with the random source port, what keeps off-path answers out):
/// std's per-process random hasher keys are enough for that without another crate.
fn random_id() -> u16 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 24) as u16
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::{RData, Record};

    use super::*;

    fn check(record: DnsRecord, expect: &[&str]) -> DnsCheck {
        DnsCheck::new(
            "10.0.0.2:53".parse().unwrap(),
            "api.internal",
            record,
            expect.iter().map(|s| s.parse().unwrap()).collect(),
        )
        .unwrap()
    }

    /// A response to `check`'s query (id 7) with `code` and these answer records.
    fn response(check: &DnsCheck, code: ResponseCode, answers: &[RData]) -> Message {
        let mut m = Message::new();
        m.set_id(7)
            .set_message_type(MessageType::Response)
            .set_response_code(code)
            .add_query(Query::query(check.name.clone(), check.record_type()));
        for data in answers {
            m.add_answer(Record::from_rdata(check.name.clone(), 30, data.clone()));
        }
        // Through the wire format, as the probe sees it.
        Message::from_vec(&m.to_vec().unwrap()).unwrap()
    }

    fn a(ip: &str) -> RData {
        RData::A(A(ip.parse().unwrap()))
    }

    fn aaaa(ip: &str) -> RData {
        RData::AAAA(AAAA(ip.parse().unwrap()))
    }

    fn reason(result: Result<(), ProbeError>) -> String {
        match result {
            Ok(()) => panic!("the answer was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn expected_addresses_must_all_be_answered() {
        let one = check(DnsRecord::A, &["10.0.0.5"]);
        let r = response(&one, ResponseCode::NoError, &[a("10.0.0.5")]);
        assert!(one.evaluate(&r).is_ok());
        // More addresses than expected is fine (round-robin pools).
        let r = response(&one, ResponseCode::NoError, &[a("10.0.0.9"), a("10.0.0.5")]);
        assert!(one.evaluate(&r).is_ok());
        let r = response(&one, ResponseCode::NoError, &[a("10.0.0.9")]);
        assert_eq!(
            reason(one.evaluate(&r)),
            "answered 10.0.0.9, expected 10.0.0.5"
        );
        let two = check(DnsRecord::A, &["10.0.0.5", "10.0.0.6"]);
        let r = response(&two, ResponseCode::NoError, &[a("10.0.0.5")]);
        assert_eq!(
            reason(two.evaluate(&r)),
            "answered 10.0.0.5, expected 10.0.0.5, 10.0.0.6"
        );
        let v6 = check(DnsRecord::Aaaa, &["fd00::5"]);
        let r = response(&v6, ResponseCode::NoError, &[aaaa("fd00::5")]);
        assert!(v6.evaluate(&r).is_ok());
        let r = response(&v6, ResponseCode::NoError, &[aaaa("fd00::9")]);
        assert_eq!(
            reason(v6.evaluate(&r)),
            "answered fd00::9, expected fd00::5"
        );
    }

    #[test]
    fn without_expectations_any_record_of_the_type_will_do() {
        let any = check(DnsRecord::A, &[]);
        let r = response(&any, ResponseCode::NoError, &[a("192.0.2.1")]);
        assert!(any.evaluate(&r).is_ok());
        // NODATA: the name exists, but has no address of this family.
        let r = response(&any, ResponseCode::NoError, &[]);
        assert_eq!(reason(any.evaluate(&r)), "no A records for api.internal");
        let v6 = check(DnsRecord::Aaaa, &[]);
        let r = response(&v6, ResponseCode::NoError, &[a("192.0.2.1")]);
        assert_eq!(reason(v6.evaluate(&r)), "no AAAA records for api.internal");
    }

    #[test]
    fn records_behind_a_cname_count() {
        let one = check(DnsRecord::A, &["10.0.0.5"]);
        let target = Name::from_ascii("lb.internal.").unwrap();
        let mut m = response(
            &one,
            ResponseCode::NoError,
            &[RData::CNAME(CNAME(target.clone()))],
        );
        assert_eq!(reason(one.evaluate(&m)), "no A records for api.internal");
        m.add_answer(Record::from_rdata(target, 30, a("10.0.0.5")));
        assert!(one.evaluate(&m).is_ok());
    }

    #[test]
    fn failures_name_the_response_code() {
        let one = check(DnsRecord::A, &["10.0.0.5"]);
        let cases = [
            (
                ResponseCode::NXDomain,
                "NXDOMAIN: api.internal does not exist",
            ),
            (ResponseCode::ServFail, "SERVFAIL for api.internal A"),
            (
                ResponseCode::Refused,
                "REFUSED (Query Refused) for api.internal A",
            ),
            (
                ResponseCode::FormErr,
                "FORMERR (Form Error) for api.internal A",
            ),
        ];
        for (code, expected) in cases {
            let r = response(&one, code, &[]);
            assert_eq!(reason(one.evaluate(&r)), expected, "{code:?}");
        }
        // Even with records: the code is what the server meant.
        let r = response(&one, ResponseCode::ServFail, &[a("10.0.0.5")]);
        assert_eq!(reason(one.evaluate(&r)), "SERVFAIL for api.internal A");
    }

    #[test]
    fn a_truncated_answer_says_so() {
        let one = check(DnsRecord::A, &[]);
        let mut r = response(&one, ResponseCode::NoError, &[]);
        r.set_truncated(true);
        assert_eq!(
            reason(one.evaluate(&r)),
            "no A records for api.internal (the answer was truncated; the probe does not retry \
             over TCP)"
        );
    }

    #[test]
    fn only_the_answer_to_our_query_counts() {
        let one = check(DnsRecord::A, &[]);
        let ours = response(&one, ResponseCode::NoError, &[a("10.0.0.5")]);
        assert!(one.answers(7, &ours));
        assert!(!one.answers(8, &ours), "another id");
        let mut query = ours.clone();
        query.set_message_type(MessageType::Query);
        assert!(!one.answers(7, &query), "not a response");
        let other = check(DnsRecord::Aaaa, &[]);
        assert!(!other.answers(7, &ours), "another question type");
        let mut renamed = DnsCheck::new(
            "10.0.0.2:53".parse().unwrap(),
            "web.internal",
            DnsRecord::A,
            Vec::new(),
        )
        .unwrap();
        assert!(!renamed.answers(7, &ours), "another name");
        // Names compare without case (clients that randomise it are answered in kind).
        renamed.name = Name::from_ascii("API.Internal.").unwrap();
        assert!(renamed.answers(7, &ours));
        // An error without a question section (FORMERR from some servers) still answers us.
        let mut bare = Message::new();
        bare.set_id(7)
            .set_message_type(MessageType::Response)
            .set_response_code(ResponseCode::FormErr);
        assert!(one.answers(7, &bare));
    }

    #[test]
    fn the_query_asks_for_recursion_under_a_fresh_id() {
        let one = check(DnsRecord::Aaaa, &[]);
        let bytes = one.request(4242).unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.id(), 4242);
        assert_eq!(m.message_type(), MessageType::Query);
        assert!(m.recursion_desired());
        assert_eq!(m.queries().len(), 1);
        assert_eq!(m.queries()[0].name().to_ascii(), "api.internal.");
        assert_eq!(m.queries()[0].query_type(), RecordType::AAAA);
        assert_eq!(m.max_payload(), UDP_PAYLOAD);
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| random_id()).collect();
        assert!(ids.len() > 32, "ids repeat: {ids:?}");
    }
}
