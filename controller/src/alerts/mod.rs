//! Alerts from the team's own monitoring: the HTTPS receiver Alertmanager (or any system able
//! to POST JSON) delivers to, and the log of what arrived, which runs read to measure time to
//! detect.

pub mod log;
pub mod payload;
pub mod receiver;

pub use log::{AlertLog, LabelSelector, Received};
pub use payload::{Alert, AlertStatus};
