//! What the embedded resolver says about one query, from its wire bytes: a poisoned answer
//! (an address, NODATA, NXDOMAIN or SERVFAIL), silence, or "ask the upstream".

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

use super::names::{normalize, NamePattern};
use super::Answer;

/// TTL of poisoned answers: zero, so no cache keeps the poison after the revert.
const POISON_TTL: u32 = 0;

/// What the resolver does with poisoned names.
#[derive(Clone, Debug)]
pub struct Poison {
    /// Poisoned names.
    pub names: Vec<NamePattern>,
    /// What they resolve to.
    pub answer: Answer,
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// A poisoned name whose answer is a timeout: say nothing.
    Silence,
    /// Not poisoned (or not understood): let the upstream answer.
    Forward,
}

impl Poison {
    /// Decides what to do with a query, from its wire bytes.
    pub fn decide(&self, query: &[u8]) -> Verdict {
        // Anything we cannot read is the upstream's to judge, as it would be without us.
        let Ok(request) = Message::from_vec(query) else {
            return Verdict::Forward;
        };
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            return Verdict::Forward;
        }
        let Some(question) = request.queries().first() else {
            return Verdict::Forward;
        };
        let name = normalize(&question.name().to_ascii());
        if !self.names.iter().any(|p| p.matches(&name)) {
            return Verdict::Forward;
        }
        let (code, record) = match self.answer {
            Answer::Timeout => return Verdict::Silence,
            Answer::Nxdomain => (ResponseCode::NXDomain, None),
            Answer::Servfail => (ResponseCode::ServFail, None),
            // A name that has only an address of the other family answers NOERROR with no
            // records (NODATA), as a real zone would.
            Answer::Address(ip) => (
                ResponseCode::NoError,
                match (ip, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(v4))),
                    (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
                    _ => None,
                },
            ),
        };
        let mut response = Message::new();
        response
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(request.recursion_desired())
            .set_recursion_available(true)
            .set_checking_disabled(request.checking_disabled())
            .set_response_code(code)
            .add_query(question.clone());
        if let Some(rdata) = record {
            // The question's own spelling: clients that randomise case check it comes back.
            response.add_answer(Record::from_rdata(
                question.name().clone(),
                POISON_TTL,
                rdata,
            ));
        }
        if request.extensions().is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            response.set_edns(edns);
        }
        match response.to_vec() {
            Ok(bytes) => Verdict::Reply(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a poisoned answer; forwarding instead");
                Verdict::Forward
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    use super::*;

    fn query_bytes(id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    fn poison(names: &[&str], answer: Answer) -> Poison {
        Poison {
            names: names
                .iter()
                .map(|n| NamePattern::parse(n).unwrap())
                .collect(),
            answer,
        }
    }

    fn reply(v: Verdict) -> Message {
        match v {
            Verdict::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn addresses_answer_their_own_record_type() {
        let v4 = poison(
            &["api.test", "*.api.test"],
            Answer::Address("10.9.9.9".parse().unwrap()),
        );
        let r = reply(v4.decide(&query_bytes(7, "API.test.", RecordType::A, false)));
        assert_eq!(r.id(), 7);
        assert_eq!(r.message_type(), MessageType::Response);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.recursion_desired() && r.recursion_available());
        assert_eq!(r.queries()[0].name().to_ascii(), "API.test.");
        assert_eq!(r.answers().len(), 1);
        assert_eq!(
            r.answers()[0].data(),
            &RData::A(A("10.9.9.9".parse().unwrap()))
        );
        assert_eq!(r.answers()[0].ttl(), 0);
        assert!(r.extensions().is_none());
        // The other family: NODATA, as a zone with only an A record would answer.
        let r = reply(v4.decide(&query_bytes(8, "www.api.test", RecordType::AAAA, true)));
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.answers().is_empty());
        assert!(r.extensions().is_some(), "EDNS is answered with EDNS");
        let v6 = poison(&["api.test"], Answer::Address("fd00::9".parse().unwrap()));
        let r = reply(v6.decide(&query_bytes(9, "api.test", RecordType::AAAA, false)));
        assert_eq!(
            r.answers()[0].data(),
            &RData::AAAA(AAAA("fd00::9".parse().unwrap()))
        );
        let r = reply(v6.decide(&query_bytes(9, "api.test", RecordType::A, false)));
        assert!(r.answers().is_empty());
    }

    #[test]
    fn failures_and_silence() {
        let nx = poison(&["api.test"], Answer::Nxdomain);
        let r = reply(nx.decide(&query_bytes(1, "api.test", RecordType::MX, false)));
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(r.answers().is_empty());
        let sf = poison(&["api.test"], Answer::Servfail);
        let r = reply(sf.decide(&query_bytes(1, "api.test", RecordType::A, false)));
        assert_eq!(r.response_code(), ResponseCode::ServFail);
        let quiet = poison(&["api.test"], Answer::Timeout);
        assert_eq!(
            quiet.decide(&query_bytes(1, "api.test", RecordType::A, false)),
            Verdict::Silence
        );
    }

    #[test]
    fn everything_else_is_forwarded() {
        let p = poison(&["api.test", "*.svc.test"], Answer::Nxdomain);
        for name in ["other.test", "www.api.test", "svc.test", "api.test.evil"] {
            assert_eq!(
                p.decide(&query_bytes(1, name, RecordType::A, false)),
                Verdict::Forward,
                "{name}"
            );
        }
        assert_eq!(p.decide(b"\x00\x01garbage"), Verdict::Forward);
        assert_eq!(p.decide(b""), Verdict::Forward);
        // An answer, not a query, is not ours to answer either.
        let mut answer =
            Message::from_vec(&query_bytes(1, "api.test", RecordType::A, false)).unwrap();
        answer.set_message_type(MessageType::Response);
        assert_eq!(p.decide(&answer.to_vec().unwrap()), Verdict::Forward);
    }
}
