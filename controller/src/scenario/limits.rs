//! The documented bounds of a scenario (README, "Limits"): every duration, size and count a
//! scenario holds has a maximum checked at validation, so nothing downstream (timers, deadlines,
//! sums over repeats) can overflow, and the size of what validation reports is bounded too.
//!
//! Fault durations and disk sizes are bounded in the shared contract
//! ([`gameday_proto::fault`]) so that the agent enforces the same limits; they are repeated here
//! so that this module lists every limit.

use gameday_proto::Duration;

pub use gameday_proto::fault::{MAX_DISK_BYTES, MAX_FAULT_DURATION, MIN_FAULT_DURATION};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

/// The most errors one scenario reports (the first, in file order); the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;
/// The most characters of user input (a key, a value) an error message quotes.
pub const MAX_ECHO_CHARS: usize = 64;

/// Longest `rto`: an objective beyond a day is not something a game day measures.
pub const MAX_RTO: Duration = Duration::from_millis(24 * HOUR);
/// Longest `observe`: at least the RTO, and holding faults stay at most this long.
pub const MAX_OBSERVE: Duration = Duration::from_millis(24 * HOUR);
/// Longest `steady_state`: long enough to trust the service is healthy; more only delays.
pub const MAX_STEADY_STATE: Duration = Duration::from_millis(HOUR);
/// Longest `cooldown`: a pause between repeats; longer gaps are a schedule's job.
pub const MAX_COOLDOWN: Duration = Duration::from_millis(HOUR);
/// Most `repeat`s: enough for tight percentiles, and a bounded total run time.
pub const MAX_REPEAT: u32 = 1_000;

/// Shortest probe `interval`: faster probing loads the service more than it tells us.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Longest probe `interval`: a probe rarer than this cannot time a recovery.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_millis(HOUR);
/// Longest probe `timeout`: a check still waiting after this long is hung, not slow.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_millis(5 * MINUTE);
/// Most consecutive successes `recovered_after` may ask for.
pub const MAX_RECOVERED_AFTER: u32 = 1_000;
/// Most checks one probe may keep in flight (`max_in_flight`, and the cap of its default):
/// enough for a check every 10 ms while earlier ones hang for 2 s; more is load, not insight.
pub const MAX_PROBE_IN_FLIGHT: u32 = 200;
/// Most connections per probe sample (`spread`): enough to cover the backends of a balancer.
pub const MAX_PROBE_SPREAD: u32 = 16;

/// Most `[[remediation]]` steps in one scenario: a runbook, not a workflow engine.
pub const MAX_STEPS: usize = 16;
/// Longest remediation step `timeout`: a restore from backup may take a while, not a day.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_millis(6 * HOUR);

/// Largest `max_targets`: more than any one controller's fleet; larger is a typo.
pub const MAX_TARGETS: u32 = 10_000;
