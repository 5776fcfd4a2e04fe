//! Showing a run's progress: plain lines when stderr is not a terminal (CI logs), and on a
//! terminal the same lines plus a live status line — phase, and the RTO timer counting from
//! the injection.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use gameday::engine::{Phase, ProgressEvent};
use gameday::grade::fmt_us;
use tokio::sync::mpsc;

/// Prints progress events from `events` until the sender is dropped.
pub async fn show(mut events: mpsc::UnboundedReceiver<ProgressEvent>) {
    let live = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut last: Option<ProgressEvent> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let mut err = std::io::stderr().lock();
                if live {
                    let _ = write!(err, "\r\x1b[2K");
                }
                let _ = writeln!(err, "{}", event.line);
                last = Some(event);
            }
            _ = tick.tick(), if live => {}
        }
        if let (true, Some(event)) = (live, &last) {
            let _ = write!(
                std::io::stderr().lock(),
                "\r\x1b[2K{}",
                status(event, gameday::timeline::unix_ms_now())
            );
        }
    }
    if live {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
    }
}

/// The status line for the latest event at wall-clock `now_ms`.
pub fn status(event: &ProgressEvent, now_ms: u64) -> String {
    let head = format!(
        "[run {}/{}] {}",
        event.run,
        event.runs,
        event.phase.as_str().replace('_', " ")
    );
    let rto_us = event.rto_ms * 1000;
    match (event.phase, event.injected_unix_ms) {
        (Phase::Observing | Phase::Reverted, Some(at)) => {
            let elapsed_us = now_ms.saturating_sub(at) * 1000;
            let state = if elapsed_us <= rto_us {
                format!("{} left", fmt_us(rto_us - elapsed_us))
            } else {
                format!("RTO exceeded by {}", fmt_us(elapsed_us - rto_us))
            };
            format!(
                "{head} — {} since the fault, RTO {} ({state})",
                fmt_us(elapsed_us),
                fmt_us(rto_us)
            )
        }
        _ => head,
    }
}

/// Turns a wire update into an event (unknown phases read as observing).
pub fn from_wire(u: gameday_proto::v1::ProgressUpdate) -> ProgressEvent {
    ProgressEvent {
        phase: Phase::from_wire(u.phase()).unwrap_or(Phase::Observing),
        line: u.line,
        run: u.run,
        runs: u.runs,
        rto_ms: u.rto_ms,
        injected_unix_ms: (u.injected_unix_ms > 0).then_some(u.injected_unix_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(phase: Phase, injected: Option<u64>) -> ProgressEvent {
        ProgressEvent {
            line: String::new(),
            phase,
            run: 2,
            runs: 3,
            rto_ms: 2_000,
            injected_unix_ms: injected,
        }
    }

    #[test]
    fn the_rto_timer_counts_from_the_injection() {
        let s = status(&event(Phase::Observing, Some(10_000)), 10_500);
        assert_eq!(
            s,
            "[run 2/3] observing — 500.0ms since the fault, RTO 2.000s (1.500s left)"
        );
        let s = status(&event(Phase::Reverted, Some(10_000)), 13_000);
        assert!(s.ends_with("(RTO exceeded by 1.000s)"), "{s}");
        assert_eq!(
            status(&event(Phase::SteadyState, None), 1),
            "[run 2/3] steady state"
        );
    }
}
