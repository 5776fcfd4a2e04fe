//! The enforcer: reverts faults at their deadlines and everything when the lease runs out,
//! whether or not the controller is reachable. It sleeps until the next of those moments, so an
//! agent with nothing live does not wake at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Wakeups;
use crate::live::LiveFaults;

/// How soon the enforcer tries again when something is still due after a pass: a revert that
/// failed (it was logged) and is retried at the pace the agent always retried it.
const RETRY: Duration = Duration::from_millis(50);

/// Enforces deadlines and the `lease` on `live` until the task is aborted.
pub async fn run(live: Arc<LiveFaults>, lease: Duration, wakeups: Arc<Wakeups>) {
    loop {
        wakeups.enforcer.fetch_add(1, Ordering::Relaxed);
        let pass = live.clone();
        // Reverting runs nft, writes files and fsyncs the journal: off the async workers, so
        // it cannot delay heartbeats.
        if let Err(e) = tokio::task::spawn_blocking(move || pass.enforce(lease)).await {
            tracing::error!(error = %e, "enforcing deadlines panicked");
        }
        match live.next_due(lease) {
            Some(due) if due > Instant::now() => {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = live.added() => {}
                }
            }
            Some(_) => tokio::time::sleep(RETRY).await,
            None => live.added().await,
        }
    }
}
