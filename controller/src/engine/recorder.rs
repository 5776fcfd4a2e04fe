//! Hands a run's new probe samples to its observers while it goes on.

use std::sync::Arc;
use std::time::Duration;

use super::observer::RunObserver;
use crate::probe::ProbeSet;

/// Hands new samples to the observers four times a second, so a controller that dies mid-run
/// has recorded everything up to its last quarter second.
pub(super) struct Recorder {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub(super) fn start(
        probes: &ProbeSet,
        observers: &[Arc<dyn RunObserver>],
        run_id: &str,
    ) -> Recorder {
        let mut reader = probes.reader();
        let observers = observers.to_vec();
        let run_id = run_id.to_string();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut stopped => true,
                };
                for (probe, samples) in reader.take_new() {
                    for o in &observers {
                        o.samples(&run_id, &probe, &samples);
                    }
                }
                if last {
                    return;
                }
            }
        });
        Recorder { stop, task }
    }

    pub(super) async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
