//! `process_pause`: SIGSTOP the chosen processes, SIGCONT them on revert.
//!
//! The plan records each target's pid and start time, so a revert (also one read back from the
//! journal after a crash) continues exactly those processes and never a newcomer that reused
//! a pid.

use std::time::Instant;

use gameday_proto::v1::Evidence;
use gameday_proto::ProcessPause;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::process_kill::{list, select};
use super::process_policy::ProcessPolicy;
use super::{Applied, FaultError, Host, Reverted};
use crate::os::{OsError, ProcessInfo};

/// The processes to stop and later continue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Each target as it was when chosen.
    pub targets: Vec<Target>,
}

/// One paused process, identified by pid and start time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    /// Process id.
    pub pid: i32,
    /// Start time in clock ticks since boot (tells a reused pid apart).
    pub start_ticks: u64,
    /// Its name, for reports.
    pub name: String,
    /// Its state letter before the pause (`R`, `S`...); a process already stopped is not ours
    /// to continue.
    pub state_before: Option<char>,
}

/// Chooses the processes (policy checked for every one) and records their state.
pub fn prepare(
    pause: &ProcessPause,
    policy: &ProcessPolicy,
    host: &Host,
) -> Result<Plan, FaultError> {
    let os = host.processes.as_ref();
    let chosen = select(&pause.selector, pause.count, policy, os)?;
    let targets = chosen
        .targets
        .into_iter()
        .map(|p| {
            let state_before = os.state(p.pid).map_err(FaultError::Process)?;
            Ok(Target {
                pid: p.pid,
                start_ticks: p.start_ticks,
                name: p.name,
                state_before,
            })
        })
        .collect::<Result<Vec<_>, FaultError>>()?;
    if let Some(t) = targets.iter().find(|t| t.state_before == Some('T')) {
        return Err(FaultError::Invalid(format!(
            "process {} ({}) is already stopped; pausing it would make its recovery ours to fake",
            t.pid, t.name
        )));
    }
    Ok(Plan { targets })
}

/// Stops every target. If one cannot be stopped, the ones already stopped are continued again
/// before the error is returned: nothing is half-applied.
pub fn apply(plan: &Plan, host: &Host) -> Result<Applied, FaultError> {
    let os = host.processes.as_ref();
    let mut stopped: Vec<&Target> = Vec::new();
    // The moment before the first successful SIGSTOP: the effect cannot precede it (see
    // process_kill for why not after).
    let mut effect_at = None;
    for t in &plan.targets {
        let before = Instant::now();
        match os.signal(t.pid, Signal::SIGSTOP) {
            Ok(()) => {
                effect_at.get_or_insert(before);
                stopped.push(t);
            }
            Err(OsError::NoSuchProcess { .. }) => {}
            Err(e) => {
                for s in &stopped {
                    let _ = os.signal(s.pid, Signal::SIGCONT);
                }
                return Err(FaultError::Process(e));
            }
        }
    }
    let Some(effect_at) = effect_at else {
        return Err(FaultError::Invalid(
            "every chosen process exited before it could be stopped".into(),
        ));
    };
    let infos: Vec<ProcessInfo> = stopped.iter().map(|t| info(t)).collect();
    let summary = format!(
        "stopped {} (SIGSTOP): {}",
        count(infos.len()),
        list(&infos.iter().collect::<Vec<_>>())
    );
    // `live` logs the one line for the host owner.
    tracing::debug!(%summary, "process_pause applied");
    Ok(Applied {
        effect_at,
        evidence: Evidence {
            pids: stopped.iter().map(|t| t.pid).collect(),
            summary,
            ..Evidence::default()
        },
    })
}

/// Continues every target that is still the same process. Reports as residue any target that
/// is still stopped afterwards.
pub fn revert(plan: &Plan, host: &Host) -> Result<Reverted, FaultError> {
    let os = host.processes.as_ref();
    let mut continued = Vec::new();
    let mut residue = Vec::new();
    for t in &plan.targets {
        let Some(now) = os.process(t.pid).map_err(FaultError::Process)? else {
            continue; // gone: nothing left to continue
        };
        if now.start_ticks != t.start_ticks {
            continue; // the pid now belongs to someone else
        }
        match os.signal(t.pid, Signal::SIGCONT) {
            Ok(()) | Err(OsError::NoSuchProcess { .. }) => continued.push(t.pid),
            Err(e) => return Err(FaultError::Process(e)),
        }
        if os.state(t.pid).map_err(FaultError::Process)? == Some('T') {
            residue.push(format!("process {} ({}) is still stopped", t.pid, t.name));
        }
    }
    Ok(Reverted {
        evidence: Evidence {
            pids: continued.clone(),
            summary: format!("continued {} (SIGCONT)", count(continued.len())),
            residue,
            ..Evidence::default()
        },
    })
}

fn info(t: &Target) -> ProcessInfo {
    ProcessInfo {
        pid: t.pid,
        name: t.name.clone(),
        cmdline: String::new(),
        start_ticks: t.start_ticks,
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}
