//! Fault implementations: the agent-side apply and revert of each fault kind, always behind the
//! host's policy and the [`ProcessOs`] boundary.

pub mod process_kill;

use std::time::Instant;

use gameday_proto::v1::{Evidence, FailureKind};
use gameday_proto::Fault;

use crate::os::ProcessOs;
use crate::policy::{Policy, PolicyRefusal};

/// Fault kinds this build of the agent can apply. A kind the protocol knows but this list lacks
/// is answered with [`FaultError::Unsupported`] and left out of the capabilities.
const SUPPORTED_KINDS: &[&str] = &["process_kill"];

/// A fault that took effect.
#[derive(Clone, Debug)]
pub struct Applied {
    /// When the fault took effect: right after the last system call that made it happen.
    pub effect_at: Instant,
    /// What the fault did, for the report.
    pub evidence: Evidence,
}

/// Why a fault could not be applied or reverted. Every message is a full sentence meant for
/// the operator; [`FaultError::kind`] says which side is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// The host's policy refused it.
    #[error("{0}")]
    Policy(String),
    /// The request is malformed or names nothing that exists (no matching process...).
    #[error("{0}")]
    Invalid(String),
    /// The operating system refused or failed.
    #[error("{0}")]
    System(String),
    /// This agent cannot apply this kind of fault.
    #[error("{0}")]
    Unsupported(String),
}

impl FaultError {
    /// The failure kind reported to the controller.
    pub fn kind(&self) -> FailureKind {
        match self {
            FaultError::Policy(_) => FailureKind::Policy,
            FaultError::Invalid(_) => FailureKind::Invalid,
            FaultError::System(_) => FailureKind::System,
            FaultError::Unsupported(_) => FailureKind::Unsupported,
        }
    }

    /// The human-readable message without the kind.
    pub fn message(&self) -> &str {
        match self {
            FaultError::Policy(m)
            | FaultError::Invalid(m)
            | FaultError::System(m)
            | FaultError::Unsupported(m) => m,
        }
    }
}

impl From<PolicyRefusal> for FaultError {
    fn from(refusal: PolicyRefusal) -> Self {
        FaultError::Policy(refusal.to_string())
    }
}

/// Applies `fault` on this host, if the policy allows its kind and its targets.
pub fn apply(fault: &Fault, policy: &Policy, os: &dyn ProcessOs) -> Result<Applied, FaultError> {
    let kind = fault.kind();
    if !SUPPORTED_KINDS.contains(&kind) {
        return Err(unsupported(kind));
    }
    policy.check_kind(kind)?;
    match fault {
        Fault::ProcessKill(kill) => process_kill::apply(kill, policy, os),
    }
}

/// Undoes `fault`. Safe to call more than once, and for faults whose apply failed.
pub fn revert(fault: &Fault, os: &dyn ProcessOs) -> Result<(), FaultError> {
    match fault {
        Fault::ProcessKill(kill) => process_kill::revert(kill, os),
    }
}

/// The fault kinds this agent can apply here: supported by this build and allowed by policy.
pub fn capabilities(policy: &Policy) -> Vec<String> {
    SUPPORTED_KINDS
        .iter()
        .filter(|kind| policy.allows_kind(kind))
        .map(|kind| kind.to_string())
        .collect()
}

fn unsupported(kind: &str) -> FaultError {
    FaultError::Unsupported(format!(
        "this agent cannot apply {kind} faults (it supports: {})",
        SUPPORTED_KINDS.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyConfig;
    use gameday_proto::fault::FAULT_KINDS;

    #[test]
    fn supported_kinds_are_protocol_kinds() {
        for kind in SUPPORTED_KINDS {
            assert!(FAULT_KINDS.contains(kind), "{kind}");
        }
    }

    #[test]
    fn capabilities_follow_the_policy() {
        assert_eq!(capabilities(&Policy::permissive()), vec!["process_kill"]);
        let none = PolicyConfig {
            allow_faults: Vec::new(),
            ..PolicyConfig::default()
        };
        assert!(capabilities(&Policy::from_config(&none).unwrap()).is_empty());
    }

    #[test]
    fn errors_map_to_wire_failure_kinds() {
        assert_eq!(FaultError::Policy("x".into()).kind(), FailureKind::Policy);
        assert_eq!(FaultError::Invalid("x".into()).kind(), FailureKind::Invalid);
        assert_eq!(FaultError::System("x".into()).kind(), FailureKind::System);
        assert_eq!(unsupported("dns_poison").kind(), FailureKind::Unsupported);
        assert_eq!(FaultError::System("boom".into()).message(), "boom");
    }
}
