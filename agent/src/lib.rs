//! gameday agent: dials the controller, applies and reverts faults and runs remediation steps
//! under the host's own policy.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod faults;
pub mod instance;
pub mod journal;
pub mod live;
pub mod os;
pub mod policy;
pub mod steps;
