//! When a schedule fires: cron slots in its time zone (daylight-saving changes included), the
//! window, and what a restart does about slots missed while the controller was down. Pure
//! functions of the wall-clock times they are given.

use std::path::PathBuf;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::{MissedPolicy, Window};
use crate::webhook::WebhookTarget;

/// The most slots counted or scanned in one look; beyond it counts are reported as "at least".
const SCAN_LIMIT: usize = 10_000;

/// A validated schedule, ready to compute its firings.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    /// The scenario file (absolute once the config loader resolved it).
    pub scenario: PathBuf,
    /// The cron expression as written.
    pub cron_text: String,
    pub(super) cron: Cron,
    /// The time zone the expression and the window are read in.
    pub tz: Tz,
    /// The daily window, if any.
    pub window: Option<Window>,
    /// What a restart does about missed slots.
    pub missed: MissedPolicy,
    /// Where outcomes are posted.
    pub webhook: Option<WebhookTarget>,
}

/// Slots in an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    /// How many (at most the scan limit).
    pub count: usize,
    /// Whether there were more than `count`.
    pub more: bool,
    /// The latest of them.
    pub latest: Option<DateTime<Utc>>,
}

/// What to do when the scheduler starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPlan {
    /// No record of an earlier firing: start watching from now.
    Fresh,
    /// No slot was missed.
    UpToDate,
    /// Slots were missed and the policy is `run_once`: run now, once, for the latest.
    CatchUp(Slots),
    /// Slots were missed and the policy is `skip`: acknowledge them and wait.
    SkipMissed(Slots),
}

/// Parses a cron expression (5 or 6 fields, seconds first when 6, optional year).
pub(super) fn parse_cron(text: &str) -> Result<Cron, String> {
    Cron::from_str(text).map_err(|e| e.to_string())
}

impl Schedule {
    /// The first slot strictly after `t`; `None` if the expression never fires again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest slot at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The slots in `(after, until]`.
    pub fn slots_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Slots {
        let latest = self.latest_at_or_before(until).filter(|l| *l > after);
        let mut count = 0;
        let mut more = false;
        if latest.is_some() {
            let mut cursor = after;
            while let Some(next) = self.next_after(cursor).filter(|n| *n <= until) {
                if count == SCAN_LIMIT {
                    more = true;
                    break;
                }
                count += 1;
                cursor = next;
            }
        }
        Slots {
            count,
            more,
            latest,
        }
    }

    /// Whether a run may start at `t` (always, without a window).
    pub fn in_window(&self, t: DateTime<Utc>) -> bool {
        self.window
            .is_none_or(|w| w.contains(t.with_timezone(&self.tz).time()))
    }

    /// The next slot after `t` at which a run would actually start (inside the window);
    /// `None` if there is none among the next slots scanned.
    pub fn next_run_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut cursor = t;
        for _ in 0..SCAN_LIMIT {
            let next = self.next_after(cursor)?;
            if self.in_window(next) {
                return Some(next);
            }
            cursor = next;
        }
        None
    }

    /// What a scheduler starting at `now` does, given the instant up to which slots were
    /// handled before it stopped.
    pub fn plan_start(
        &self,
        handled_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StartPlan {
        let Some(handled) = handled_until else {
            return StartPlan::Fresh;
        };
        let missed = self.slots_between(handled, now);
        if missed.latest.is_none() {
            return StartPlan::UpToDate;
        }
        match self.missed {
            MissedPolicy::RunOnce => StartPlan::CatchUp(missed),
            MissedPolicy::Skip => StartPlan::SkipMissed(missed),
        }
    }
}

impl Slots {
    /// "3", or "at least 10000".
    pub fn describe(&self) -> String {
        if self.more {
            format!("at least {}", self.count)
        } else {
            self.count.to_string()
        }
    }
}
