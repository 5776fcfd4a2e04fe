//! `dns_poison`: make chosen names resolve to a wrong address, or fail.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{check_duration, duration_from_ms, duration_to_ms, FaultSpecError};
use crate::v1;
use crate::Duration;

/// Where the poison goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsMode {
    /// Rewrite the host's hosts file (exact names, address answers only).
    #[default]
    Hosts,
    /// The agent's own DNS server answers; outgoing port-53 traffic is redirected to it.
    Resolver,
}

/// What poisoned names resolve to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsAnswer {
    /// This address.
    Address(IpAddr),
    /// NXDOMAIN.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// No answer at all.
    Timeout,
}

/// `dns_poison`. Built only from [`RawDnsPoison`] (or the wire), which checks everything once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawDnsPoison", into = "RawDnsPoison")]
pub struct DnsPoison {
    /// Hosts file or resolver.
    pub mode: DnsMode,
    /// Names to poison: exact, or `*.suffix` (resolver mode only); at least one.
    pub names: Vec<String>,
    /// What they resolve to; only an address in hosts mode.
    pub answer: DnsAnswer,
    /// How long the poison holds; until the run reverts it when absent.
    pub duration: Option<Duration>,
}

/// A `dns_poison` table as written, unchecked: [`DnsPoison::try_from`] reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsPoison {
    /// `hosts` (default) or `resolver`.
    #[serde(default)]
    pub mode: DnsMode,
    /// Names to poison: exact, or `*.suffix` (resolver mode only).
    pub names: Vec<String>,
    /// An IP address, or `nxdomain`, `servfail`, `timeout` (resolver mode only).
    pub answer: String,
    /// How long the poison holds; until the run reverts it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

impl std::str::FromStr for DnsAnswer {
    type Err = FaultSpecError;

    fn from_str(answer: &str) -> Result<DnsAnswer, FaultSpecError> {
        match answer.to_ascii_lowercase().as_str() {
            "nxdomain" => Ok(DnsAnswer::NxDomain),
            "servfail" => Ok(DnsAnswer::ServFail),
            "timeout" => Ok(DnsAnswer::Timeout),
            other => other.parse().map(DnsAnswer::Address).map_err(|_| {
                invalid(
                    "answer",
                    format!(
                        "{answer:?} is neither an IP address nor one of nxdomain, servfail, timeout"
                    ),
                )
            }),
        }
    }
}

impl std::fmt::Display for DnsAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsAnswer::Address(ip) => write!(f, "{ip}"),
            DnsAnswer::NxDomain => f.write_str("nxdomain"),
            DnsAnswer::ServFail => f.write_str("servfail"),
            DnsAnswer::Timeout => f.write_str("timeout"),
        }
    }
}

/// Whether `name` is a DNS name (`api.example`) or a `*.suffix` wildcard: labels of letters,
/// digits, `-` and `_`, each 1–63 long, 253 in all.
pub fn is_dns_pattern(name: &str) -> bool {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> FaultSpecError {
    FaultSpecError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl TryFrom<RawDnsPoison> for DnsPoison {
    type Error = FaultSpecError;

    fn try_from(d: RawDnsPoison) -> Result<DnsPoison, FaultSpecError> {
        if let Some(duration) = d.duration {
            check_duration(duration)?;
        }
        if d.names.is_empty() {
            return Err(FaultSpecError::Empty { field: "names" });
        }
        let answer: DnsAnswer = d.answer.parse()?;
        for name in &d.names {
            if !is_dns_pattern(name) {
                return Err(invalid(
                    "names",
                    format!("{name:?} is not a DNS name (or *.suffix wildcard)"),
                ));
            }
            if d.mode == DnsMode::Hosts && name.starts_with("*.") {
                return Err(invalid(
                    "names",
                    format!(
                        "{name:?}: a hosts file cannot hold wildcards; use mode = \"resolver\""
                    ),
                ));
            }
        }
        if d.mode == DnsMode::Hosts && !matches!(answer, DnsAnswer::Address(_)) {
            return Err(invalid(
                "answer",
                format!("a hosts file can only map names to an address, not {:?}; use mode = \"resolver\"", d.answer),
            ));
        }
        Ok(DnsPoison {
            mode: d.mode,
            names: d.names,
            answer,
            duration: d.duration,
        })
    }
}

impl From<DnsPoison> for RawDnsPoison {
    fn from(d: DnsPoison) -> RawDnsPoison {
        RawDnsPoison {
            mode: d.mode,
            names: d.names,
            answer: d.answer.to_string(),
            duration: d.duration,
        }
    }
}

impl DnsPoison {
    pub(super) fn to_wire(&self) -> v1::DnsPoison {
        use v1::dns_poison::Answer;
        let answer = match self.answer {
            DnsAnswer::Address(ip) => Answer::Address(ip.to_string()),
            DnsAnswer::NxDomain => Answer::Failure(v1::DnsFailure::Nxdomain as i32),
            DnsAnswer::ServFail => Answer::Failure(v1::DnsFailure::Servfail as i32),
            DnsAnswer::Timeout => Answer::Failure(v1::DnsFailure::Timeout as i32),
        };
        v1::DnsPoison {
            mode: match self.mode {
                DnsMode::Hosts => v1::DnsMode::Hosts,
                DnsMode::Resolver => v1::DnsMode::Resolver,
            } as i32,
            names: self.names.clone(),
            answer: Some(answer),
            duration_ms: duration_to_ms(self.duration),
        }
    }

    /// The wire form read back into the fields as written; [`DnsPoison::try_from`] checks them.
    pub(super) fn from_wire(d: &v1::DnsPoison) -> Result<RawDnsPoison, FaultSpecError> {
        use v1::dns_poison::Answer;
        let mode = match v1::DnsMode::try_from(d.mode) {
            Ok(v1::DnsMode::Hosts) => DnsMode::Hosts,
            Ok(v1::DnsMode::Resolver) => DnsMode::Resolver,
            _ => return Err(invalid("mode", format!("unknown mode {}", d.mode))),
        };
        let answer = match &d.answer {
            Some(Answer::Address(a)) => a.clone(),
            Some(Answer::Failure(f)) => match v1::DnsFailure::try_from(*f) {
                Ok(v1::DnsFailure::Nxdomain) => "nxdomain".into(),
                Ok(v1::DnsFailure::Servfail) => "servfail".into(),
                Ok(v1::DnsFailure::Timeout) => "timeout".into(),
                _ => return Err(invalid("answer", format!("unknown failure {f}"))),
            },
            None => return Err(FaultSpecError::Empty { field: "answer" }),
        };
        Ok(RawDnsPoison {
            mode,
            names: d.names.clone(),
            answer,
            duration: duration_from_ms(d.duration_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poison(mode: DnsMode, names: &[&str], answer: &str) -> Result<DnsPoison, FaultSpecError> {
        DnsPoison::try_from(RawDnsPoison {
            mode,
            names: names.iter().map(|s| s.to_string()).collect(),
            answer: answer.into(),
            duration: None,
        })
    }

    #[test]
    fn hosts_mode_limits() {
        assert!(poison(DnsMode::Hosts, &["api.test"], "10.0.0.9").is_ok());
        assert!(poison(DnsMode::Hosts, &["*.test"], "10.0.0.9").is_err());
        assert!(poison(DnsMode::Hosts, &["api.test"], "nxdomain").is_err());
        assert!(poison(DnsMode::Resolver, &["*.test"], "servfail").is_ok());
    }

    #[test]
    fn bad_names_and_answers() {
        assert!(poison(DnsMode::Resolver, &["bad name"], "nxdomain").is_err());
        assert!(poison(DnsMode::Resolver, &["a.test"], "sometimes").is_err());
        assert!(poison(DnsMode::Resolver, &[], "nxdomain").is_err());
    }

    #[test]
    fn answers_read_back_as_written() {
        for answer in ["10.0.0.9", "fd00::1", "nxdomain", "servfail", "timeout"] {
            assert_eq!(answer.parse::<DnsAnswer>().unwrap().to_string(), answer);
        }
        assert_eq!("NXDOMAIN".parse::<DnsAnswer>(), Ok(DnsAnswer::NxDomain));
    }
}
