//! What a run records over time: probe samples and the fault's moments, on the controller's
//! monotonic clock in microseconds since the run's epoch.

use serde::{Deserialize, Serialize};

/// One probe check: when it started and ended, and whether the service answered as expected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Microseconds since the run's epoch when the check began.
    pub start_us: u64,
    /// Microseconds since the run's epoch when the check's answer (or failure) arrived.
    pub end_us: u64,
    /// The check succeeded.
    pub ok: bool,
    /// Why the check failed; empty when it succeeded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// A probe's whole series of samples in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTimeline {
    /// The probe's name in the scenario.
    pub name: String,
    /// Consecutive successes that count as recovered.
    pub recovered_after: u32,
    /// Samples in the order their answers arrived. Checks overlap (a check that hangs does not
    /// delay the next), so a sample may have started before the one recorded ahead of it.
    pub samples: Vec<Sample>,
    /// Checks that were due but not started because `max_in_flight` checks were still running.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// The seed of the probe's phase and period jitter (give it as the probe's `seed` to
    /// sample at the same moments again); `None` in reports from before probes had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A moment on the controller's clock known only to within `± uncertainty_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    /// Microseconds since the run's epoch (best estimate).
    pub at_us: u64,
    /// Half the width of the interval the true moment lies in.
    pub uncertainty_us: u64,
}

/// Estimates when a fault took effect on the agent from one request/response exchange.
///
/// The controller sent the request at `sent_us` and got the answer at `received_us`; the agent
/// says it spent `apply_us` from receipt to effect and `since_effect_us` from effect to reply.
/// What is left of the round trip is network, split evenly each way; the error is at most that
/// one-way share.
pub fn effect_moment(
    sent_us: u64,
    received_us: u64,
    apply_us: u64,
    since_effect_us: u64,
) -> Moment {
    let round_trip = received_us.saturating_sub(sent_us);
    let network = round_trip.saturating_sub(apply_us.saturating_add(since_effect_us));
    let one_way = network / 2;
    let at_us = (sent_us + one_way + apply_us).min(received_us);
    Moment {
        at_us,
        uncertainty_us: one_way.max(1),
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock `Instant` reads on Linux, shared by every
/// process on the host, so other processes' timestamps can be lined up with a run's.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or_default()
}

/// Wall-clock now, milliseconds since the Unix epoch.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effect_moment_splits_network_time_evenly() {
        // 1000 µs round trip, the agent spent 200 applying and 100 after: 700 network, 350 each way.
        let m = effect_moment(10_000, 11_000, 200, 100);
        assert_eq!(m.at_us, 10_000 + 350 + 200);
        assert_eq!(m.uncertainty_us, 350);
    }

    #[test]
    fn effect_moment_tolerates_agent_claims_longer_than_the_round_trip() {
        let m = effect_moment(10_000, 10_100, 500, 500);
        assert_eq!(m.at_us, 10_100);
        assert_eq!(m.uncertainty_us, 1);
    }
}
