//! gameday controller: agent registry, scenario validation, run engine, probes, grading,
//! reports and the server. `main.rs` is a thin CLI over this library so tests can run it
//! in-process too.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod annotation;
pub mod certs;
pub mod config;
pub mod demo_service;
pub mod engine;
#[cfg(test)]
mod fixtures;
pub mod grade;
pub mod http_server;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod probe;
pub mod registry;
pub mod remediation;
pub mod render;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod server;
pub mod session;
pub mod store;
pub mod timeline;
pub mod webhook;
