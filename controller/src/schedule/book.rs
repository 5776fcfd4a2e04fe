//! The schedule table the scheduler keeps and operators read (`gameday schedules`): each
//! schedule with its next run, last run, last skip and whether it is running now.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use gameday_proto::v1;

use super::{LastRun, LastSkip, Schedule, StateStore};

/// Shared view of the schedules; cheap to clone.
#[derive(Clone, Debug)]
pub struct ScheduleBook {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    schedules: Vec<Schedule>,
    store: StateStore,
    running: Mutex<BTreeSet<String>>,
}

/// One schedule as operators see it.
#[derive(Clone, Debug)]
pub struct ScheduleStatus {
    /// The schedule.
    pub schedule: Schedule,
    /// The next slot a run would start at (inside the window).
    pub next_run: Option<DateTime<Utc>>,
    /// The last firing that ran.
    pub last_run: Option<LastRun>,
    /// The last firing that was skipped.
    pub last_skip: Option<LastSkip>,
    /// Running now.
    pub running: bool,
}

impl ScheduleBook {
    /// A book over `schedules`, remembering through `store`.
    pub fn new(schedules: Vec<Schedule>, store: StateStore) -> ScheduleBook {
        ScheduleBook {
            inner: Arc::new(Inner {
                schedules,
                store,
                running: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    /// The schedules.
    pub fn schedules(&self) -> &[Schedule] {
        &self.inner.schedules
    }

    /// The persistent state.
    pub fn store(&self) -> &StateStore {
        &self.inner.store
    }

    /// Marks a schedule as running; false if it already was (the caller must not run it).
    pub fn begin(&self, name: &str) -> bool {
        self.running().insert(name.to_string())
    }

    /// Marks a schedule as no longer running.
    pub fn end(&self, name: &str) {
        self.running().remove(name);
    }

    /// Every schedule's status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> Vec<ScheduleStatus> {
        let running = self.running().clone();
        self.inner
            .schedules
            .iter()
            .map(|s| {
                let state = self.inner.store.get(&s.name);
                ScheduleStatus {
                    next_run: s.next_run_after(now),
                    last_run: state.last_run,
                    last_skip: state.last_skip,
                    running: running.contains(&s.name),
                    schedule: s.clone(),
                }
            })
            .collect()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.inner.running.lock().expect("running schedules lock")
    }
}

impl ScheduleStatus {
    /// The wire form.
    pub fn to_info(&self) -> v1::ScheduleInfo {
        let s = &self.schedule;
        let utc = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        v1::ScheduleInfo {
            name: s.name.clone(),
            scenario: s.scenario.display().to_string(),
            cron: s.cron_text.clone(),
            timezone: s.tz.name().to_string(),
            window: s.window.map(|w| w.to_string()).unwrap_or_default(),
            missed: s.missed.to_string(),
            next_run_local: self
                .next_run
                .map(|t| {
                    t.with_timezone(&s.tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, true)
                })
                .unwrap_or_default(),
            next_run_utc: self.next_run.as_ref().map(utc).unwrap_or_default(),
            last_run_utc: self
                .last_run
                .as_ref()
                .map(|r| utc(&r.started))
                .unwrap_or_default(),
            last_outcome: self
                .last_run
                .as_ref()
                .map(|r| r.outcome.clone())
                .unwrap_or_default(),
            last_skip_utc: self
                .last_skip
                .as_ref()
                .map(|k| utc(&k.slot))
                .unwrap_or_default(),
            last_skip_reason: self
                .last_skip
                .as_ref()
                .map(|k| k.reason.clone())
                .unwrap_or_default(),
            running: self.running,
            webhook: s
                .webhook
                .as_ref()
                .map(|w| w.format().to_string())
                .unwrap_or_default(),
        }
    }
}
