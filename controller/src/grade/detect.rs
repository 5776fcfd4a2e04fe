//! Time to detect by the team's own monitoring: the first alert matching the scenario's
//! `[detect]` selector that started after the injection, timed twice — from the alert's own
//! `startsAt` (when Prometheus fired it) and from when its delivery reached the controller.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::alerts::Received;
use crate::scenario::Detect;

/// An alert as a run saw it, on the run's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenAlert {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its `summary` annotation, if any.
    pub summary: Option<String>,
    /// When it started firing, µs since the run's epoch (from its `startsAt`, a wall-clock
    /// time); `None` when the sender gave none. Negative: before the run began.
    pub fired_us: Option<i64>,
    /// When its delivery arrived, µs since the run's epoch.
    pub arrived_us: u64,
    /// The sender's identity for it, to count one alert once however often it is delivered.
    pub fingerprint: Option<String>,
}

impl SeenAlert {
    /// `received` on a run whose epoch is `epoch` (monotonic) and began at `started_unix_ms`
    /// on the wall clock.
    pub fn on_run(
        received: &Received,
        epoch: tokio::time::Instant,
        started_unix_ms: u64,
    ) -> SeenAlert {
        let a = &received.alert;
        let started = i64::try_from(started_unix_ms).unwrap_or(i64::MAX);
        SeenAlert {
            labels: a.labels.clone(),
            summary: a.annotations.get("summary").cloned(),
            fired_us: a
                .starts_at_unix_ms
                .map(|ms| ms.saturating_sub(started).saturating_mul(1000)),
            arrived_us: u64::try_from(
                received
                    .arrived
                    .saturating_duration_since(epoch)
                    .as_micros(),
            )
            .unwrap_or(u64::MAX),
            fingerprint: a.fingerprint.clone(),
        }
    }

    /// When it fired, or when it arrived if the sender did not say.
    fn start_us(&self) -> i64 {
        self.fired_us
            .unwrap_or_else(|| i64::try_from(self.arrived_us).unwrap_or(i64::MAX))
    }

    /// One alert however often delivered: its fingerprint, or its labels and start.
    fn identity(&self) -> String {
        match &self.fingerprint {
            Some(f) => f.clone(),
            None => format!("{:?}@{}", self.labels, self.start_us()),
        }
    }
}

/// What the team's monitoring made of the fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// The selector the scenario gave, as text (`{alertname="RedisDown"}`).
    pub selector: String,
    /// How long the alert had, µs after the injection.
    pub within_us: u64,
    /// The alert that noticed it, if one did in time.
    pub alert: Option<DetectedAlert>,
    /// Alerts that arrived meanwhile but started before the injection.
    pub ignored_before: u32,
    /// Alerts that arrived meanwhile with labels the selector does not match.
    pub ignored_unmatched: u32,
    /// Whether an unnoticed fault fails the run.
    pub expect_alert: bool,
}

/// The alert that noticed the fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedAlert {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its summary, if it has one.
    pub summary: Option<String>,
    /// Time to detect by the alert's own start (`startsAt`), µs after the injection; `None`
    /// when the sender gave no start.
    pub fired_after_us: Option<u64>,
    /// Time to detect by its delivery to the controller, µs after the injection.
    pub delivered_after_us: u64,
}

impl Detection {
    /// Whether an alert noticed the fault in time.
    pub fn noticed(&self) -> bool {
        self.alert.is_some()
    }

    /// One sentence for reports.
    pub fn summary(&self) -> String {
        let ignored = match (self.ignored_before, self.ignored_unmatched) {
            (0, 0) => String::new(),
            (b, u) => format!(
                " ({b} alert(s) that started before the fault and {u} with other labels ignored)"
            ),
        };
        match &self.alert {
            None => format!(
                "unnoticed by monitoring: no alert matching {} within {}{ignored}",
                self.selector,
                gameday_proto::Duration::from_millis(self.within_us / 1000)
            ),
            Some(a) => {
                let name = a
                    .labels
                    .get("alertname")
                    .map_or("the alert", String::as_str);
                let fired = a
                    .fired_after_us
                    .map_or(String::from("start not given"), |us| {
                        format!("fired +{}", crate::grade::fmt_us(us))
                    });
                format!(
                    "{name} noticed it: {fired}, delivered +{} after the fault{ignored}",
                    crate::grade::fmt_us(a.delivered_after_us)
                )
            }
        }
    }
}

/// Grades detection from the alerts seen since the injection at `inject_us`.
pub fn detect(spec: &Detect, inject_us: u64, alerts: &[SeenAlert]) -> Detection {
    let within_us = u64::try_from(spec.within.get().as_micros()).unwrap_or(u64::MAX);
    let deadline = inject_us.saturating_add(within_us);
    let inject = i64::try_from(inject_us).unwrap_or(i64::MAX);
    let mut before = BTreeSet::new();
    let mut unmatched = BTreeSet::new();
    let mut first: Option<&SeenAlert> = None;
    for a in alerts.iter().filter(|a| a.arrived_us <= deadline) {
        if !spec.alerts.matches(&a.labels) {
            unmatched.insert(a.identity());
        } else if a.start_us() < inject {
            before.insert(a.identity());
        } else if a.start_us() <= i64::try_from(deadline).unwrap_or(i64::MAX)
            && first.is_none_or(|f| a.start_us() < f.start_us())
        {
            first = Some(a);
        }
    }
    let after = |us: u64| us.saturating_sub(inject_us);
    Detection {
        selector: spec.alerts.to_string(),
        within_us,
        alert: first.map(|a| DetectedAlert {
            labels: a.labels.clone(),
            summary: a.summary.clone(),
            fired_after_us: a.fired_us.map(|f| after(u64::try_from(f).unwrap_or(0))),
            delivered_after_us: after(a.arrived_us),
        }),
        ignored_before: u32::try_from(before.len()).unwrap_or(u32::MAX),
        ignored_unmatched: u32::try_from(unmatched.len()).unwrap_or(u32::MAX),
        expect_alert: spec.expect_alert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::LabelSelector;

    const S: u64 = 1_000_000;

    fn spec(expect_alert: bool) -> Detect {
        Detect {
            alerts: LabelSelector(BTreeMap::from([("alertname".into(), "RedisDown".into())])),
            within: gameday_proto::Duration::from_millis(60_000),
            expect_alert,
        }
    }

    fn seen(name: &str, fired_s: Option<i64>, arrived_s: u64, fp: &str) -> SeenAlert {
        SeenAlert {
            labels: BTreeMap::from([("alertname".into(), name.into())]),
            summary: None,
            fired_us: fired_s.map(|s| s * 1_000_000),
            arrived_us: arrived_s * S,
            fingerprint: Some(fp.into()),
        }
    }

    #[test]
    fn the_first_matching_alert_after_the_injection_is_timed_both_ways() {
        let alerts = [
            seen("RedisDown", Some(5), 12, "old"), // started before the fault
            seen("DiskFull", Some(11), 12, "other"), // other labels
            seen("RedisDown", Some(14), 44, "late"), // a later one
            seen("RedisDown", Some(13), 45, "first"), // fired first, delivered later
            seen("RedisDown", Some(5), 46, "old"), // the old one again
        ];
        let d = detect(&spec(true), 10 * S, &alerts);
        let a = d.alert.as_ref().expect("noticed");
        assert_eq!(a.fired_after_us, Some(3 * S));
        assert_eq!(a.delivered_after_us, 35 * S);
        assert_eq!((d.ignored_before, d.ignored_unmatched), (1, 1));
        assert!(
            d.summary().starts_with("RedisDown noticed it: fired +3"),
            "{}",
            d.summary()
        );
    }

    #[test]
    fn nothing_in_time_is_unnoticed() {
        let late = [seen("RedisDown", Some(75), 80, "late")];
        let d = detect(&spec(true), 10 * S, &late);
        assert!(!d.noticed());
        assert!(
            d.summary().starts_with(
                "unnoticed by monitoring: no alert matching {alertname=\"RedisDown\"} within 1m"
            ),
            "{}",
            d.summary()
        );
        // An alert without a start counts from its arrival.
        let no_start = [seen("RedisDown", None, 20, "x")];
        let d = detect(&spec(false), 10 * S, &no_start);
        assert_eq!(d.alert.unwrap().fired_after_us, None);
    }
}
