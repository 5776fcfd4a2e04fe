//! Where a run reads its probe samples. Real runs read a [`ProbeSet`] sampling the service;
//! phase tests read a scripted timeline, because a real probe measures real latency and means
//! nothing under a paused clock.

use std::future::Future;

use crate::probe::ProbeSet;
use crate::timeline::ProbeTimeline;

/// Probe samples as a run goes on.
pub trait SampleSource: Send + Sync {
    /// Every probe's samples so far.
    fn snapshot(&self) -> Vec<ProbeTimeline>;

    /// A probe that stopped sampling on its own (a bug), if any: its silence must not read as
    /// a healthy service.
    fn crashed(&self) -> Option<String>;

    /// Stops sampling and returns every probe's samples.
    fn stop(self) -> impl Future<Output = Vec<ProbeTimeline>> + Send;
}

impl SampleSource for ProbeSet {
    fn snapshot(&self) -> Vec<ProbeTimeline> {
        ProbeSet::snapshot(self)
    }

    fn crashed(&self) -> Option<String> {
        ProbeSet::crashed(self)
    }

    fn stop(self) -> impl Future<Output = Vec<ProbeTimeline>> + Send {
        ProbeSet::stop(self)
    }
}
