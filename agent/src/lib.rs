//! gameday agent: dials the controller, applies and reverts faults under the host's own policy.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod faults;
pub mod instance;
pub mod journal;
pub mod live;
pub mod os;
pub mod policy;
