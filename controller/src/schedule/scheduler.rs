//! The scheduler task `gameday serve` starts: one loop per schedule that sleeps until the next
//! slot, checks the window, reads and validates the scenario file fresh, runs it through the
//! engine (never two runs of one schedule at once), remembers the outcome and posts the
//! webhook. Nothing a firing meets — a broken file, a failing webhook — stops the loop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{
    LastRun, LastSkip, Schedule, ScheduleBook, ScheduleConfig, ScheduleError, StartPlan, StateStore,
};
use crate::engine::Engine;
use crate::report::ScenarioReport;
use crate::webhook::{Firing, Notice, RetryPolicy, WebhookClient};

/// How long `stop` waits for the loops (and their last webhooks) before cutting them off.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a stopping loop lets its webhook deliveries finish.
const DELIVERY_GRACE: Duration = Duration::from_secs(5);
/// Longest single sleep: wall-clock time is re-read at least this often, so a clock step or a
/// suspended machine does not push a firing back.
const MAX_NAP: Duration = Duration::from_secs(30);
/// How long a catch-up run at startup waits for its target agents to reconnect.
const RECONNECT_GRACE: Duration = Duration::from_secs(30);

/// The running scheduler. Stop it with [`Scheduler::stop`].
#[derive(Debug)]
pub struct Scheduler {
    book: ScheduleBook,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Starts one loop per schedule in `schedules` (already validated at config load),
    /// remembering them in `DATA_DIR/schedules.json`.
    pub fn start(
        schedules: &[ScheduleConfig],
        data_dir: &std::path::Path,
        engine: Arc<Engine>,
    ) -> Result<Scheduler, ScheduleError> {
        let compiled = schedules
            .iter()
            .map(ScheduleConfig::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<&str> = compiled.iter().map(|s| s.name.as_str()).collect();
        let store = StateStore::open(data_dir, &names);
        let book = ScheduleBook::new(compiled, store);
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        for schedule in book.schedules() {
            let webhook = schedule
                .webhook
                .clone()
                .map(|t| WebhookClient::new(t, RetryPolicy::default()))
                .transpose()
                .map_err(|e| ScheduleError::Webhook {
                    schedule: schedule.name.clone(),
                    message: e.to_string(),
                })?;
            let firing_loop = FiringLoop {
                schedule: schedule.clone(),
                book: book.clone(),
                engine: engine.clone(),
                webhook,
                stopped: stopped.clone(),
                deliveries: JoinSet::new(),
            };
            loops.spawn(firing_loop.run());
        }
        let task = tokio::spawn(async move {
            while let Some(done) = loops.join_next().await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a schedule loop failed");
                }
            }
        });
        Ok(Scheduler { book, stop, task })
    }

    /// The schedule table, for operators.
    pub fn book(&self) -> ScheduleBook {
        self.book.clone()
    }

    /// Stops every loop. A scheduled run still going is abandoned (its agents revert its faults
    /// within their lease); webhooks in flight get a few seconds to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            tracing::warn!(grace = ?STOP_GRACE, "schedule loops did not stop in time; cutting them off");
            abort.abort();
        }
    }
}

/// One schedule's loop.
struct FiringLoop {
    schedule: Schedule,
    book: ScheduleBook,
    engine: Arc<Engine>,
    webhook: Option<WebhookClient>,
    stopped: watch::Receiver<bool>,
    deliveries: JoinSet<()>,
}

/// How a firing ended, for the loop.
enum Fired {
    /// Go on.
    Continue,
    /// Shutdown was requested.
    Stop,
}

impl FiringLoop {
    async fn run(mut self) {
        let mut cursor = self.start().await;
        while let Some(after) = cursor {
            let Some(next) = self.schedule.next_after(after) else {
                tracing::warn!(schedule = %self.schedule.name, cron = %self.schedule.cron_text, "the cron expression never fires again");
                let _ = self.stopped.wait_for(|s| *s).await;
                break;
            };
            if !self.sleep_until(next).await {
                break;
            }
            self.store().update(&self.schedule.name, |s| {
                s.handled_until = Some(next);
            });
            cursor = match self.fire(next, false).await {
                Fired::Continue => Some(self.skip_overrun(next)),
                Fired::Stop => None,
            };
        }
        self.drain_deliveries().await;
    }

    /// Handles what happened while the controller was down; returns where slots are counted
    /// from (`None` when asked to stop meanwhile).
    async fn start(&mut self) -> Option<DateTime<Utc>> {
        let name = self.schedule.name.clone();
        let now = Utc::now();
        let state = self.store().get(&name);
        if state
            .last_run
            .as_ref()
            .is_some_and(|r| r.finished.is_none())
        {
            self.store().update(&name, |s| {
                if let Some(r) = s.last_run.as_mut() {
                    r.outcome = "interrupted: the controller stopped during the run".into();
                }
            });
        }
        match self.schedule.plan_start(state.handled_until, now) {
            StartPlan::Fresh | StartPlan::UpToDate => {
                self.store().update(&name, |s| s.handled_until = Some(now));
                let next = self.schedule.next_run_after(now).map(|t| t.to_rfc3339());
                tracing::info!(schedule = %name, next = next.as_deref().unwrap_or("none"), "schedule armed");
                Some(now)
            }
            StartPlan::SkipMissed(missed) => {
                let latest = missed.latest.unwrap_or(now);
                tracing::warn!(schedule = %name, missed = %missed.describe(), latest = %rfc3339(latest), "firings were missed while the controller was down; policy is skip");
                self.store().update(&name, |s| {
                    s.handled_until = Some(now);
                    s.last_skip = Some(LastSkip {
                        slot: latest,
                        reason: format!(
                            "{} firing(s) missed while the controller was down (missed = \"skip\")",
                            missed.describe()
                        ),
                    });
                });
                Some(now)
            }
            StartPlan::CatchUp(missed) => {
                let latest = missed.latest.unwrap_or(now);
                tracing::warn!(schedule = %name, missed = %missed.describe(), latest = %rfc3339(latest), "firings were missed while the controller was down; running once now (missed = run_once)");
                self.store()
                    .update(&name, |s| s.handled_until = Some(latest));
                match self.fire(latest, true).await {
                    Fired::Continue => Some(self.skip_overrun(latest)),
                    Fired::Stop => None,
                }
            }
        }
    }

    /// Sleeps until wall-clock `t`; false when shutdown was requested first.
    async fn sleep_until(&mut self, t: DateTime<Utc>) -> bool {
        loop {
            self.reap_deliveries();
            let now = Utc::now();
            if now >= t {
                return true;
            }
            let nap = (t - now)
                .to_std()
                .unwrap_or_default()
                .clamp(Duration::from_millis(1), MAX_NAP);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = self.stopped.wait_for(|s| *s) => return false,
            }
        }
    }

    /// One firing for `slot`: window, fresh scenario, run, record, webhook.
    async fn fire(&mut self, slot: DateTime<Utc>, catch_up: bool) -> Fired {
        let name = self.schedule.name.clone();
        let started = Utc::now();
        if !self.schedule.in_window(started) {
            let local = started.with_timezone(&self.schedule.tz);
            let window = self
                .schedule
                .window
                .map(|w| w.to_string())
                .unwrap_or_default();
            tracing::warn!(schedule = %name, slot = %rfc3339(slot), local = %local.format("%H:%M"), %window, tz = %self.schedule.tz, "firing skipped: outside its window");
            self.store().update(&name, |s| {
                s.last_skip = Some(LastSkip {
                    slot,
                    reason: format!(
                        "outside its window {window} ({}): local time was {}",
                        self.schedule.tz,
                        local.format("%H:%M")
                    ),
                });
            });
            return Fired::Continue;
        }
        if !self.book.begin(&name) {
            tracing::warn!(schedule = %name, slot = %rfc3339(slot), "firing skipped: the previous run is still going");
            return Fired::Continue;
        }
        tracing::info!(schedule = %name, slot = %rfc3339(slot), catch_up, file = %self.schedule.scenario.display(), "scheduled run starting");
        self.store().update(&name, |s| {
            s.last_run = Some(LastRun {
                slot,
                started,
                finished: None,
                outcome: "running".into(),
                exit_code: None,
                run_ids: vec![],
                catch_up,
            });
        });
        let outcome = {
            let run = run_scenario(&self.engine, &self.schedule, catch_up);
            tokio::select! {
                outcome = run => Some(outcome),
                _ = self.stopped.wait_for(|s| *s) => None,
            }
        };
        self.book.end(&name);
        let Some(outcome) = outcome else {
            tracing::warn!(schedule = %name, "shutting down during a scheduled run; it is abandoned and its agents revert its faults within their lease");
            return Fired::Stop;
        };
        let firing = Firing {
            slot,
            started,
            finished: Utc::now(),
            catch_up,
        };
        let notice = match outcome {
            Ok(report) => Notice::finished(
                &name,
                firing,
                &report,
                self.schedule.webhook.as_ref().and_then(|w| w.report_url()),
            ),
            Err(error) => {
                tracing::error!(schedule = %name, file = %self.schedule.scenario.display(), %error, "scheduled scenario could not run");
                Notice::invalid(&name, &self.schedule.scenario, firing, error)
            }
        };
        tracing::info!(schedule = %name, outcome = %notice.outcome(), exit_code = notice.exit_code, "scheduled run finished");
        self.store().update(&name, |s| {
            s.last_run = Some(LastRun {
                slot,
                started,
                finished: Some(firing.finished),
                outcome: notice.outcome(),
                exit_code: Some(notice.exit_code),
                run_ids: notice.run_ids.clone(),
                catch_up,
            });
        });
        if let Some(client) = self.webhook.clone() {
            let schedule = name.clone();
            self.deliveries.spawn(async move {
                match client.deliver(&notice).await {
                    Ok(attempts) => {
                        tracing::info!(%schedule, webhook = %client.target().redacted(), attempts, "webhook delivered")
                    }
                    Err(e) => {
                        tracing::error!(%schedule, webhook = %client.target().redacted(), error = %e, "webhook not delivered")
                    }
                }
            });
        }
        Fired::Continue
    }

    /// Slots that came due while a run went on are skipped (no overlap); returns the new
    /// cursor.
    fn skip_overrun(&self, cursor: DateTime<Utc>) -> DateTime<Utc> {
        let passed = self.schedule.slots_between(cursor, Utc::now());
        let Some(latest) = passed.latest else {
            return cursor;
        };
        tracing::warn!(schedule = %self.schedule.name, skipped = %passed.describe(), "firing(s) skipped: the previous run was still going");
        self.store().update(&self.schedule.name, |s| {
            s.handled_until = Some(latest);
            s.last_skip = Some(LastSkip {
                slot: latest,
                reason: format!(
                    "{} firing(s) came while the previous run was still going",
                    passed.describe()
                ),
            });
        });
        latest
    }

    fn reap_deliveries(&mut self) {
        while self.deliveries.try_join_next().is_some() {}
    }

    async fn drain_deliveries(&mut self) {
        let drained = tokio::time::timeout(DELIVERY_GRACE, async {
            while self.deliveries.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(schedule = %self.schedule.name, "webhook deliveries still pending at shutdown were dropped");
            self.deliveries.abort_all();
        }
    }

    fn store(&self) -> &StateStore {
        self.book.store()
    }
}

/// Reads and validates the scenario file, then runs it; `Err` when the file is unreadable or
/// invalid. Progress lines go to the log. A catch-up run comes right after the controller
/// started, so it first gives its targets a little time to reconnect.
async fn run_scenario(
    engine: &Engine,
    schedule: &Schedule,
    catch_up: bool,
) -> Result<ScenarioReport, String> {
    let file = schedule.scenario.display().to_string();
    let text = tokio::fs::read_to_string(&schedule.scenario)
        .await
        .map_err(|e| format!("{file}: {e}"))?;
    // Validation is CPU work: off the async workers, where it would delay probes.
    let input = engine
        .validator()
        .parse(file, text)
        .await
        .map_err(|e| e.to_string())?;
    let scenario = &input.scenario;
    if catch_up {
        let deadline = tokio::time::Instant::now() + RECONNECT_GRACE;
        while crate::engine::preflight::resolve(scenario, engine.registry()).is_err()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (progress, mut lines) = mpsc::unbounded_channel();
    let by = crate::engine::StartedBy::Schedule(schedule.name.clone());
    let run = engine.run_scenario_as(by, &input, &progress);
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            report = &mut run => break report,
            Some(p) = lines.recv() => {
                tracing::info!(schedule = %schedule.name, "{}", p.line);
            }
        }
    };
    while let Ok(p) = lines.try_recv() {
        tracing::info!(schedule = %schedule.name, "{}", p.line);
    }
    Ok(report)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
