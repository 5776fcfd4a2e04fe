//! What monitoring systems send: Alertmanager's webhook payload (version 4) and a plain generic
//! form, read leniently (unknown and missing keys are fine, as newer Alertmanagers add fields)
//! into one [`Alert`] shape.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// One alert as received, whatever sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Its labels (`alertname`, `service`, ...), which scenarios select on.
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary`, `description`, ...), shown in reports.
    pub annotations: BTreeMap<String, String>,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// When the monitoring system says it started firing (Unix ms), if it says.
    pub starts_at_unix_ms: Option<i64>,
    /// When it stopped, for a resolved alert (Unix ms).
    pub ends_at_unix_ms: Option<i64>,
    /// The sender's identity for this alert (Alertmanager's `fingerprint`), if any.
    pub fingerprint: Option<String>,
    /// Where it came from (Prometheus' graph link), if any.
    pub generator_url: Option<String>,
}

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// It is firing.
    Firing,
    /// It has resolved.
    Resolved,
}

/// Why a delivery could not be read. Said to the sender with a 400: retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or not the expected shape.
    #[error("the body is not a valid alert payload: {0}")]
    Json(#[from] serde_json::Error),
    /// A field that must be there is not, or holds nonsense.
    #[error("alert {index}: {reason}")]
    Alert {
        /// Which alert in the list (from 0).
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Alertmanager's webhook body (`version` "4"); only what gameday uses is read.
#[derive(Debug, Deserialize)]
struct Webhook {
    #[serde(default)]
    version: Option<String>,
    alerts: Vec<RawAlert>,
}

/// The generic form, for monitoring systems other than Alertmanager:
/// `{"alerts": [{"labels": {...}, "starts_at": "RFC 3339", "status": "firing"}]}`. Only
/// `labels` is required; a missing `starts_at` means "now", a missing `status` "firing".
#[derive(Debug, Deserialize)]
struct Generic {
    alerts: Vec<RawAlert>,
}

/// One alert in either form: Alertmanager writes camelCase (`startsAt`), the generic form
/// snake_case; both are read.
#[derive(Debug, Deserialize)]
struct RawAlert {
    #[serde(default)]
    status: Option<AlertStatus>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, alias = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, alias = "endsAt")]
    ends_at: Option<String>,
    #[serde(default, alias = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// How a form names its times, for error messages.
struct TimeNames {
    starts: &'static str,
    ends: &'static str,
}

/// Most alerts one delivery may carry; Alertmanager's own default `max_alerts` is 0 (all), so
/// this only bounds a runaway sender.
pub const MAX_ALERTS: usize = 1000;

/// Reads an Alertmanager webhook body.
pub fn alertmanager(body: &[u8]) -> Result<Vec<Alert>, PayloadError> {
    let hook: Webhook = serde_json::from_slice(body)?;
    if let Some(v) = hook.version.as_deref() {
        if v != "4" {
            return Err(PayloadError::Alert {
                index: 0,
                reason: format!("webhook version {v:?} is not supported (expected \"4\")"),
            });
        }
    }
    read(
        hook.alerts,
        &TimeNames {
            starts: "startsAt",
            ends: "endsAt",
        },
    )
}

/// Reads the generic form.
pub fn generic(body: &[u8]) -> Result<Vec<Alert>, PayloadError> {
    let generic: Generic = serde_json::from_slice(body)?;
    read(
        generic.alerts,
        &TimeNames {
            starts: "starts_at",
            ends: "ends_at",
        },
    )
}

fn read(alerts: Vec<RawAlert>, names: &TimeNames) -> Result<Vec<Alert>, PayloadError> {
    bounded(alerts.len())?;
    alerts
        .into_iter()
        .enumerate()
        .map(|(index, a)| {
            let at = |field: &str, text: Option<String>| time(index, field, text);
            Ok(Alert {
                status: a.status.unwrap_or(AlertStatus::Firing),
                starts_at_unix_ms: at(names.starts, a.starts_at)?,
                ends_at_unix_ms: at(names.ends, a.ends_at)?,
                labels: labelled(index, a.labels)?,
                annotations: a.annotations,
                fingerprint: a.fingerprint.filter(|f| !f.is_empty()),
                generator_url: a.generator_url.filter(|u| !u.is_empty()),
            })
        })
        .collect()
}

fn bounded(count: usize) -> Result<(), PayloadError> {
    if count > MAX_ALERTS {
        return Err(PayloadError::Alert {
            index: MAX_ALERTS,
            reason: format!("{count} alerts in one delivery; at most {MAX_ALERTS} are accepted"),
        });
    }
    Ok(())
}

fn labelled(
    index: usize,
    labels: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, PayloadError> {
    if labels.is_empty() {
        return Err(PayloadError::Alert {
            index,
            reason: "it has no labels, so no scenario could select it".into(),
        });
    }
    Ok(labels)
}

/// An RFC 3339 time as Unix ms. Alertmanager writes Go's zero time (`0001-01-01T00:00:00Z`)
/// for "not set", which reads as absent.
fn time(index: usize, field: &str, text: Option<String>) -> Result<Option<i64>, PayloadError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let parsed = DateTime::parse_from_rfc3339(&text).map_err(|e| PayloadError::Alert {
        index,
        reason: format!("{field} {text:?} is not an RFC 3339 time: {e}"),
    })?;
    let utc: DateTime<Utc> = parsed.into();
    if utc.timestamp() <= 0 {
        return Ok(None);
    }
    Ok(Some(utc.timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Alertmanager 0.27 sends, with the fields newer versions add.
    const FIRING: &str = r#"{
      "receiver": "gameday", "status": "firing", "version": "4",
      "groupKey": "{}:{alertname=\"RedisDown\"}", "truncatedAlerts": 0,
      "groupLabels": {"alertname": "RedisDown"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://am:9093", "notification_reason": "new", "routeLabels": {},
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "RedisDown", "service": "cache"},
        "annotations": {"summary": "redis is down"},
        "startsAt": "2026-12-02T10:00:01.5+01:00",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom:9090/graph?g0.expr=up",
        "fingerprint": "4b8c3a1f00d2e9a7"
      }]
    }"#;

    #[test]
    fn reads_alertmanager_v4_with_unknown_fields() {
        let alerts = alertmanager(FIRING.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.labels["alertname"], "RedisDown");
        assert_eq!(a.annotations["summary"], "redis is down");
        // 09:00:01.5 UTC.
        assert_eq!(a.starts_at_unix_ms, Some(1_796_202_001_500));
        assert_eq!(a.ends_at_unix_ms, None, "Go's zero time means not set");
        assert_eq!(a.fingerprint.as_deref(), Some("4b8c3a1f00d2e9a7"));
    }

    #[test]
    fn missing_optional_keys_are_fine_and_bad_ones_are_named() {
        let minimal = r#"{"alerts":[{"labels":{"alertname":"X"}}]}"#;
        let a = &alertmanager(minimal.as_bytes()).unwrap()[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.starts_at_unix_ms, None);

        let bad_time =
            r#"{"alerts":[{"labels":{"a":"b"}},{"labels":{"a":"b"},"startsAt":"yesterday"}]}"#;
        let e = alertmanager(bad_time.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("alert 1: startsAt \"yesterday\""), "{e}");

        let no_labels = r#"{"alerts":[{"labels":{}}]}"#;
        let e = alertmanager(no_labels.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("no labels"), "{e}");

        let e = alertmanager(b"{\"alerts\": 3}").unwrap_err().to_string();
        assert!(
            e.starts_with("the body is not a valid alert payload"),
            "{e}"
        );

        let v5 = r#"{"version":"5","alerts":[]}"#;
        let e = alertmanager(v5.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("version \"5\""), "{e}");
    }

    #[test]
    fn reads_the_generic_form() {
        let body = r#"{"alerts":[{"labels":{"alertname":"Slow"},"starts_at":"2026-12-02T09:00:00Z","status":"resolved"}]}"#;
        let a = &generic(body.as_bytes()).unwrap()[0];
        assert_eq!(a.status, AlertStatus::Resolved);
        assert_eq!(a.starts_at_unix_ms, Some(1_796_202_000_000));
        let e = generic(br#"{"alerts":[{"status":"firing"}]}"#).unwrap_err();
        assert!(e.to_string().contains("labels"), "{e}");
    }

    #[test]
    fn a_runaway_sender_is_bounded() {
        let one = r#"{"labels":{"a":"b"}}"#;
        let body = format!("{{\"alerts\":[{}]}}", vec![one; MAX_ALERTS + 1].join(","));
        let e = generic(body.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("at most 1000"), "{e}");
    }
}
