//! Durations as scenarios and configs write them: `"250ms"`, `"30s"`, `"1m 30s"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time written in human units (`"10ms"`, `"2s"`, `"5m"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// A duration string that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected a number with a unit, like \"250ms\", \"30s\" or \"5m\")")]
pub struct DurationError {
    input: String,
    reason: String,
}

impl Duration {
    /// Builds a duration from milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    /// The standard-library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        // A bare number is ambiguous (seconds? milliseconds?), so a unit is required.
        if trimmed.chars().last().is_some_and(|c| c.is_ascii_digit()) {
            return Err(DurationError {
                input: s.to_string(),
                reason: "missing unit".into(),
            });
        }
        humantime::parse_duration(trimmed)
            .map(Duration)
            .map_err(|e| DurationError {
                input: s.to_string(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_units() {
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "30s".parse::<Duration>().unwrap(),
            Duration::from_millis(30_000)
        );
        assert_eq!(
            "1m 30s".parse::<Duration>().unwrap(),
            Duration::from_millis(90_000)
        );
        assert_eq!(
            "10ms".parse::<Duration>().unwrap(),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn rejects_bare_numbers_and_garbage() {
        assert!("250"
            .parse::<Duration>()
            .unwrap_err()
            .to_string()
            .contains("missing unit"));
        assert!("fast".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
        assert!("-1s".parse::<Duration>().is_err());
    }

    #[test]
    fn round_trips_through_display() {
        let d: Duration = "1s 250ms".parse().unwrap();
        assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
    }
}
