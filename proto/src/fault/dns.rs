//! `dns_poison`: make chosen names resolve to a wrong address, or fail.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{duration_from_ms, duration_to_ms, FaultSpecError};
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

/// `dns_poison`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPoison {
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

impl DnsPoison {
    /// The parsed answer.
    pub fn parsed_answer(&self) -> Result<DnsAnswer, FaultSpecError> {
        match self.answer.to_ascii_lowercase().as_str() {
            "nxdomain" => Ok(DnsAnswer::NxDomain),
            "servfail" => Ok(DnsAnswer::ServFail),
            "timeout" => Ok(DnsAnswer::Timeout),
            other => other.parse().map(DnsAnswer::Address).map_err(|_| {
                invalid(
                    "answer",
                    format!(
                        "{:?} is neither an IP address nor one of nxdomain, servfail, timeout",
                        self.answer
                    ),
                )
            }),
        }
    }

    pub(super) fn validate(&self) -> Result<(), FaultSpecError> {
        if self.names.is_empty() {
            return Err(FaultSpecError::Empty { field: "names" });
        }
        let answer = self.parsed_answer()?;
        for name in &self.names {
            if !is_dns_pattern(name) {
                return Err(invalid(
                    "names",
                    format!("{name:?} is not a DNS name (or *.suffix wildcard)"),
                ));
            }
            if self.mode == DnsMode::Hosts && name.starts_with("*.") {
                return Err(invalid(
                    "names",
                    format!(
                        "{name:?}: a hosts file cannot hold wildcards; use mode = \"resolver\""
                    ),
                ));
            }
        }
        if self.mode == DnsMode::Hosts && !matches!(answer, DnsAnswer::Address(_)) {
            return Err(invalid(
                "answer",
                format!("a hosts file can only map names to an address, not {:?}; use mode = \"resolver\"", self.answer),
            ));
        }
        Ok(())
    }

    pub(super) fn to_wire(&self) -> v1::DnsPoison {
        use v1::dns_poison::Answer;
        let answer = self.parsed_answer().ok().map(|a| match a {
            DnsAnswer::Address(ip) => Answer::Address(ip.to_string()),
            DnsAnswer::NxDomain => Answer::Failure(v1::DnsFailure::Nxdomain as i32),
            DnsAnswer::ServFail => Answer::Failure(v1::DnsFailure::Servfail as i32),
            DnsAnswer::Timeout => Answer::Failure(v1::DnsFailure::Timeout as i32),
        });
        v1::DnsPoison {
            mode: match self.mode {
                DnsMode::Hosts => v1::DnsMode::Hosts,
                DnsMode::Resolver => v1::DnsMode::Resolver,
            } as i32,
            names: self.names.clone(),
            answer,
            duration_ms: duration_to_ms(self.duration),
        }
    }

    pub(super) fn from_wire(d: &v1::DnsPoison) -> Result<DnsPoison, FaultSpecError> {
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
        Ok(DnsPoison {
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

    fn poison(mode: DnsMode, names: &[&str], answer: &str) -> DnsPoison {
        DnsPoison {
            mode,
            names: names.iter().map(|s| s.to_string()).collect(),
            answer: answer.into(),
            duration: None,
        }
    }

    #[test]
    fn hosts_mode_limits() {
        assert!(poison(DnsMode::Hosts, &["api.test"], "10.0.0.9")
            .validate()
            .is_ok());
        assert!(poison(DnsMode::Hosts, &["*.test"], "10.0.0.9")
            .validate()
            .is_err());
        assert!(poison(DnsMode::Hosts, &["api.test"], "nxdomain")
            .validate()
            .is_err());
        assert!(poison(DnsMode::Resolver, &["*.test"], "servfail")
            .validate()
            .is_ok());
    }

    #[test]
    fn bad_names_and_answers() {
        assert!(poison(DnsMode::Resolver, &["bad name"], "nxdomain")
            .validate()
            .is_err());
        assert!(poison(DnsMode::Resolver, &["a.test"], "sometimes")
            .validate()
            .is_err());
        assert!(poison(DnsMode::Resolver, &[], "nxdomain")
            .validate()
            .is_err());
    }
}
