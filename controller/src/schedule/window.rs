//! The daily window a scheduled run must start in, read as local wall-clock time.

use chrono::{NaiveTime, Timelike};

/// `[start, end)` of local time, in minutes since midnight. `end < start` is a window over
/// midnight (`22:00`–`06:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    start: u32,
    end: u32,
}

impl Window {
    /// Parses `HH:MM` bounds. Equal bounds are refused: an empty or all-day window is a typo
    /// (leave the window out to run at any time).
    pub fn parse(start: &str, end: &str) -> Result<Window, String> {
        let start_min = parse_hhmm(start).map_err(|e| format!("start {start:?}: {e}"))?;
        let end_min = parse_hhmm(end).map_err(|e| format!("end {end:?}: {e}"))?;
        if start_min == end_min {
            return Err(format!(
                "start and end are both {start}; leave the window out to run at any time"
            ));
        }
        Ok(Window {
            start: start_min,
            end: end_min,
        })
    }

    /// Whether local time `t` is inside.
    pub fn contains(&self, t: NaiveTime) -> bool {
        let m = t.hour() * 60 + t.minute();
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

fn parse_hhmm(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .filter(|(h, m)| (1..=2).contains(&h.len()) && m.len() == 2)
        .ok_or("expected HH:MM")?;
    let h: u32 = h.parse().map_err(|_| "expected HH:MM")?;
    let m: u32 = m.parse().map_err(|_| "expected HH:MM")?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err("hours are 00-24 and minutes 00-59".into());
    }
    Ok(h * 60 + m)
}
