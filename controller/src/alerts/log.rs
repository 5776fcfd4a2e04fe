//! The alerts received, in arrival order, each with when it arrived on the monotonic clock runs
//! measure on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::payload::Alert;

/// Alerts kept at most; the oldest go first. A run only looks at alerts that arrived after its
/// injection, so this only needs to cover the longest detection window at the busiest rate.
const KEEP: usize = 10_000;

/// One alert and when it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    /// The alert.
    pub alert: Alert,
    /// When it arrived, on the controller's monotonic clock.
    pub arrived: Instant,
}

/// The alerts received since the controller started (the newest [`KEEP`]).
#[derive(Debug, Default)]
pub struct AlertLog {
    alerts: Mutex<VecDeque<Received>>,
    arrivals: tokio::sync::Notify,
}

impl AlertLog {
    /// Records alerts that arrived together.
    pub fn record(&self, alerts: Vec<Alert>, arrived: Instant) {
        let mut log = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        for alert in alerts {
            if log.len() == KEEP {
                log.pop_front();
            }
            log.push_back(Received { alert, arrived });
        }
        drop(log);
        self.arrivals.notify_waiters();
    }

    /// Resolves when alerts are next recorded. Take it before looking at the log, so that
    /// alerts recorded in between still wake the waiter.
    pub fn arrived(&self) -> impl std::future::Future<Output = ()> + '_ {
        let mut notified = Box::pin(self.arrivals.notified());
        notified.as_mut().enable();
        notified
    }

    /// Every alert that arrived at or after `since`, oldest first.
    pub fn since(&self, since: Instant) -> Vec<Received> {
        let log = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        let first = log.partition_point(|r| r.arrived < since);
        log.range(first..).cloned().collect()
    }
}

/// Which alerts a scenario means: every label given must be present with exactly that value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabelSelector(pub BTreeMap<String, String>);

impl LabelSelector {
    /// Whether `labels` holds every label of the selector with its value.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertStatus;

    fn alert(name: &str) -> Alert {
        Alert {
            labels: BTreeMap::from([("alertname".into(), name.into())]),
            annotations: BTreeMap::new(),
            status: AlertStatus::Firing,
            starts_at_unix_ms: None,
            ends_at_unix_ms: None,
            fingerprint: None,
            generator_url: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn since_returns_what_arrived_from_then_on() {
        let log = AlertLog::default();
        let t0 = Instant::now();
        log.record(vec![alert("A")], t0);
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
        let t1 = Instant::now();
        log.record(vec![alert("B"), alert("C")], t1);
        let names = |rs: Vec<Received>| -> Vec<String> {
            rs.into_iter()
                .map(|r| r.alert.labels["alertname"].clone())
                .collect()
        };
        assert_eq!(names(log.since(t0)), ["A", "B", "C"]);
        assert_eq!(names(log.since(t1)), ["B", "C"]);
        assert!(log
            .since(t1 + std::time::Duration::from_millis(1))
            .is_empty());
    }

    #[test]
    fn a_selector_needs_every_label_with_its_value() {
        let sel = LabelSelector(BTreeMap::from([
            ("alertname".into(), "RedisDown".into()),
            ("service".into(), "cache".into()),
        ]));
        let mut labels = BTreeMap::from([
            ("alertname".to_string(), "RedisDown".to_string()),
            ("service".to_string(), "cache".to_string()),
            ("severity".to_string(), "page".to_string()),
        ]);
        assert!(sel.matches(&labels));
        labels.insert("service".into(), "db".into());
        assert!(!sel.matches(&labels));
        labels.remove("service");
        assert!(!sel.matches(&labels));
        assert_eq!(
            sel.to_string(),
            r#"{alertname="RedisDown", service="cache"}"#
        );
    }
}
