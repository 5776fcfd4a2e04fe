//! `network_partition` (being built: until it is, the agent does not advertise it).

use gameday_proto::NetworkPartition;
use serde::{Deserialize, Serialize};

use super::{Applied, FaultError, Host, Reverted};
use crate::policy::Policy;

/// The host-side machinery this fault uses.
#[derive(Debug, Default)]
pub struct Backend;

impl Backend {
    /// The real machinery, configured from the agent's config.
    pub fn from_config(_config: &crate::config::AgentConfig) -> Backend {
        Backend
    }
}

/// The `[policy.network_partition]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {}

impl PolicyConfig {
    /// Checks the table is usable.
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What the fault will do and how to undo it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {}

/// Whether this host can apply the fault.
pub fn available(_policy: &Policy, _host: &Host) -> Result<(), String> {
    Err("not implemented in this build".into())
}

/// Decides everything without changing the host.
pub fn prepare(
    _spec: &NetworkPartition,
    _fault_id: &str,
    _policy: &Policy,
    _host: &Host,
) -> Result<Plan, FaultError> {
    Err(FaultError::Unsupported(
        "network_partition is not implemented in this build".into(),
    ))
}

/// Applies the plan.
pub fn apply(_plan: &Plan, _host: &Host) -> Result<Applied, FaultError> {
    Err(FaultError::Unsupported(
        "network_partition is not implemented in this build".into(),
    ))
}

/// Undoes the plan.
pub fn revert(_plan: &Plan, _host: &Host) -> Result<Reverted, FaultError> {
    Ok(Reverted::default())
}
