//! The documented bounds of a scenario (README, "Limits"): every duration, size and count a
//! scenario holds has a maximum checked at validation, so nothing downstream (timers, deadlines,
//! sums over repeats) can overflow, and the size of what validation reports is bounded too.
//!
//! Fault durations and disk sizes are bounded in the shared contract
//! ([`gameday_proto::fault`]) so that the agent enforces the same limits; they are repeated here
//! so that this module lists every limit.

/// The most errors one scenario reports (the first, in file order); the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;
/// The most characters of user input (a key, a value) an error message quotes.
pub const MAX_ECHO_CHARS: usize = 64;
