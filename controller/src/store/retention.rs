//! Sample retention: probe samples of runs that ended longer ago than `sample_retention` are
//! deleted (they live only in the samples table); verdicts, figures and faults are kept
//! forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::params;

use super::{unix_ms_now, Store, StoreError};

/// What one pruning pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Runs whose samples were removed.
    pub runs: usize,
    /// Sample rows deleted.
    pub samples: usize,
}

impl Store {
    /// Deletes the samples of every run that ended (finished or interrupted) more than
    /// `retention` before `now_unix_ms`. Running runs are never touched.
    pub fn prune_samples(
        &self,
        retention: Duration,
        now_unix_ms: u64,
    ) -> Result<PruneOutcome, StoreError> {
        let cutoff = now_unix_ms.saturating_sub(retention.as_millis() as u64);
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let due: Vec<String> = tx
            .prepare(
                "SELECT run_id FROM runs
                 WHERE status != 'running' AND samples_pruned = 0
                   AND COALESCE(finished_unix_ms, started_unix_ms) < ?1",
            )?
            .query_map(params![cutoff], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut outcome = PruneOutcome::default();
        for run_id in due {
            outcome.samples += tx.execute("DELETE FROM samples WHERE run_id = ?1", [&run_id])?;
            tx.execute(
                "UPDATE runs SET samples_pruned = 1 WHERE run_id = ?1",
                params![run_id],
            )?;
            outcome.runs += 1;
        }
        tx.commit()?;
        Ok(outcome)
    }
}

/// Prunes samples older than `retention` now and then every `period` until `shutdown`
/// resolves. Failures are logged; the next pass tries again.
pub async fn prune_periodically(
    store: Arc<Store>,
    retention: Duration,
    period: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let store = store.clone();
        let pass =
            tokio::task::spawn_blocking(move || store.prune_samples(retention, unix_ms_now()));
        match pass.await {
            Ok(Ok(o)) if o.runs > 0 => tracing::info!(
                runs = o.runs,
                samples = o.samples,
                retention = ?retention,
                "run history: pruned old probe samples"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "run history: pruning samples failed"),
            Err(e) => tracing::error!(error = %e, "run history: the pruning task failed"),
        }
    }
}
