//! gameday controller: agent registry, scenario validation, run engine, probes, grading,
//! reports and the CLI. `main.rs` is a thin shell over this library so tests can run it in-process.
#![forbid(unsafe_code)]

pub mod certs;
pub mod scenario;
