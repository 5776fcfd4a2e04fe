//! `disk_fill`: fill the filesystem holding a directory until `fill_to` percent is used,
//! `leave_free` bytes are left, or by a fixed `size`, in one file the agent names and owns
//! (`.gameday-fill-<fault id>`); revert deletes it.
//!
//! Space is taken with `fallocate` (instant, and real blocks: the space is gone from `statvfs`
//! at once); where the filesystem cannot preallocate, zeros are written in 1 MiB chunks and
//! fsynced. Running out of space while writing is not a failure: a full disk is the point, and
//! the evidence says how much was written. The revert reports as residue the fill file still
//! being there, or free space that did not come back (a process holding the deleted file open).

mod allocate;
mod amount;
#[cfg(test)]
mod fake;
mod host_policy;
mod residue;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gameday_proto::v1::Evidence;
use gameday_proto::DiskFill;
use serde::{Deserialize, Serialize};

use allocate::{fill, Filled, Method};
pub use amount::Amount;
use amount::{bytes_to_fill, check_limits, human};
pub use host_policy::{Limits, PolicyConfig, DEFAULT_MAX_FILL_PERCENT};

use super::{Applied, FaultError, Host, Reverted, Unavailable};
use crate::os::disk::{DiskOs, FsStat, RealDisk};

/// Every fill file's name starts with this; the rest is the fault id. A name nothing else
/// uses, so a leftover is recognisable at a glance (`ls -a`) and revert never deletes a file
/// that is not a fill file.
pub const FILL_FILE_PREFIX: &str = ".gameday-fill-";

/// The host-side machinery this fault uses: the filesystem, behind [`DiskOs`].
#[derive(Clone)]
pub struct Backend {
    os: Arc<dyn DiskOs>,
    /// How long revert waits for a deleted fill file's space to come back before calling it
    /// residue (see [`Backend::with_free_space_grace`]).
    free_space_grace: Duration,
}

/// The default [`Backend::with_free_space_grace`].
pub const DEFAULT_FREE_SPACE_GRACE: Duration = Duration::from_secs(1);

impl Default for Backend {
    /// The real kernel.
    fn default() -> Self {
        Self::with_os(Arc::new(RealDisk))
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("disk_fill::Backend").finish_non_exhaustive()
    }
}

impl Backend {
    /// A backend over another filesystem implementation (a fake, in tests).
    pub fn with_os(os: Arc<dyn DiskOs>) -> Backend {
        Backend {
            os,
            free_space_grace: DEFAULT_FREE_SPACE_GRACE,
        }
    }

    /// Sets how long revert polls for the space of the deleted fill file to come back. The
    /// blocks are freed when the last reference to the file goes, which is not always at
    /// unlink: a child being forked by another thread of the agent holds a copy of the
    /// descriptor until it execs. Only a shortfall that outlasts this is residue.
    pub fn with_free_space_grace(mut self, grace: Duration) -> Backend {
        self.free_space_grace = grace;
        self
    }

    /// The filesystem operations.
    pub fn os(&self) -> &dyn DiskOs {
        self.os.as_ref()
    }
}

/// What the fault will do and how to undo it; journaled before it is applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// The directory to fill, canonical (symlinks and `..` resolved).
    pub dir: PathBuf,
    /// The fill file: `dir/.gameday-fill-<fault id>`.
    pub file: PathBuf,
    /// How much to fill. Turned into bytes again at apply, on the filesystem as it is then.
    pub amount: Amount,
    /// The policy's limits when the plan was made.
    pub limits: Limits,
    /// The bytes the fill would write as of prepare, kept in the journal for the record;
    /// apply recomputes them.
    pub planned_bytes: u64,
    /// Available bytes before the fill, for the revert's free-space check.
    pub available_before: u64,
    /// Fill files (`.gameday-fill-*`) already in `dir` before the fill.
    pub fill_files_before: Vec<String>,
}

impl Plan {
    fn file_name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Whether this host can apply the fault: the policy must list at least one directory, and at
/// least one of them must exist.
pub fn available(config: &PolicyConfig, host: &Host) -> Result<(), Unavailable> {
    let paths = &config.paths;
    if paths.is_empty() {
        return Err(Unavailable::policy(
            "policy.disk_fill.paths is empty, so no directory may be filled",
        ));
    }
    let os = host.disk.os();
    if paths.iter().any(|p| os.is_dir(p).unwrap_or(false)) {
        return Ok(());
    }
    Err(Unavailable::host(format!(
        "none of policy.disk_fill.paths is an existing directory: {:?}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    )))
}

/// Resolves the directory, checks it against the policy, and works out (without writing
/// anything) how much the fill takes and that the policy's ceiling holds.
pub fn prepare(
    spec: &DiskFill,
    fault_id: &str,
    config: &PolicyConfig,
    host: &Host,
) -> Result<Plan, FaultError> {
    let amount = Amount::from(spec.amount);
    let file_name = fill_file_name(fault_id)?;
    if config.paths.is_empty() {
        // Refused before touching the filesystem at all.
        return Err(host_policy::disabled());
    }
    let os = host.disk.os();
    let dir = os.canonicalize(&spec.path).map_err(|e| {
        if e.is_not_found() {
            FaultError::Invalid(format!(
                "disk_fill path {} does not exist on this host",
                spec.path.display()
            ))
        } else {
            FaultError::Disk(e)
        }
    })?;
    if !os.is_dir(&dir).map_err(FaultError::Disk)? {
        return Err(FaultError::Invalid(format!(
            "disk_fill path {} is not a directory (the fill file is created inside the directory given)",
            spec.path.display()
        )));
    }
    host_policy::check_contained(&dir, config, os)?;
    let stat = os.statvfs(&dir).map_err(FaultError::Disk)?;
    let planned_bytes = bytes_to_fill(amount, &stat, &dir)?;
    let limits = config.limits();
    check_limits(planned_bytes, &stat, limits, &dir)?;
    let fill_files_before = fill_files(os.list_dir(&dir).map_err(FaultError::Disk)?);
    if fill_files_before.contains(&file_name) {
        return Err(FaultError::Invalid(format!(
            "{} already exists: a fill file for fault {fault_id} is already there",
            dir.join(&file_name).display()
        )));
    }
    Ok(Plan {
        file: dir.join(&file_name),
        dir,
        amount,
        limits,
        planned_bytes,
        available_before: stat.available,
        fill_files_before,
    })
}

/// Creates the fill file and fills it. The amount is worked out again from the filesystem as
/// it is now (the service may have written since prepare) and the policy's limits checked
/// again, so the ceiling holds for what actually lands. If filling fails, the file is deleted
/// before the error is returned: nothing is half-applied.
pub fn apply(plan: &Plan, host: &Host) -> Result<Applied, FaultError> {
    check_fill_path(plan)?;
    let os = host.disk.os();
    let before = os.statvfs(&plan.dir).map_err(FaultError::Disk)?;
    let bytes = bytes_to_fill(plan.amount, &before, &plan.dir)?;
    check_limits(bytes, &before, plan.limits, &plan.dir)?;
    let mut file = os.create_exclusive(&plan.file).map_err(|e| {
        if e.is_exists() {
            FaultError::Invalid(format!(
                "{} already exists; the agent only fills a file it creates itself",
                plan.file.display()
            ))
        } else {
            FaultError::Disk(e)
        }
    })?;
    let filled = fill(file.as_mut(), bytes);
    drop(file);
    let outcome = filled.and_then(|filled| Ok((filled, os.statvfs(&plan.dir)?)));
    let (filled, after) = match outcome {
        Ok(done) => done,
        Err(e) => {
            if let Err(undo) = os.remove(&plan.file) {
                tracing::error!(file = %plan.file.display(), error = %undo, "could not delete a half-written fill file");
            }
            return Err(FaultError::Disk(e));
        }
    };
    let summary = apply_summary(plan, bytes, &filled, &before, &after);
    // `live` logs the one line for the host owner.
    tracing::debug!(%summary, "disk_fill applied");
    let figures = [
        ("bytes_written", filled.written),
        ("free_before", before.available),
        ("free_after", after.available),
        ("used_percent_after", after.used_percent()),
        ("capacity", after.capacity()),
    ];
    Ok(Applied {
        effect_at: filled.effect_at,
        evidence: Evidence {
            summary,
            figures: figures_map(&figures),
            ..Evidence::default()
        },
    })
}

/// Deletes the fill file, then checks for residue. Idempotent: a file already gone (a second
/// revert, a crash before apply, a filesystem since unmounted) is success.
pub fn revert(plan: &Plan, host: &Host) -> Result<Reverted, FaultError> {
    check_fill_path(plan)?;
    let os = host.disk.os();
    let length = os.file_len(&plan.file).map_err(FaultError::Disk)?;
    let removed = os.remove(&plan.file).map_err(FaultError::Disk)?;
    if removed {
        // Makes the unlink durable, so a power cut cannot bring the file back after the
        // journal entry is gone. The space is already free without it: only a warning.
        if let Err(e) = os.sync_dir(&plan.dir) {
            tracing::warn!(dir = %plan.dir.display(), error = %e, "could not fsync the directory after deleting the fill file");
        }
    }
    let (mut residue, notes) = residue::listing(plan, os);
    let mut figures = vec![
        (
            "bytes_removed",
            if removed { length.unwrap_or(0) } else { 0 },
        ),
        ("free_before", plan.available_before),
    ];
    let mut free_note = String::new();
    if let (true, Some(length)) = (removed, length) {
        match residue::free_space_settled(plan, length, os, host.disk.free_space_grace) {
            Ok((now, leftover)) => {
                figures.push(("free_after", now.available));
                free_note = format!(
                    "; available {} before the fill, {} now",
                    human(plan.available_before),
                    human(now.available)
                );
                residue.extend(leftover);
            }
            Err(e) => {
                tracing::warn!(dir = %plan.dir.display(), error = %e, "cannot statvfs after deleting the fill file")
            }
        }
    }
    let mut summary = if removed {
        format!(
            "deleted {} ({}){free_note}",
            plan.file.display(),
            human(length.unwrap_or(0))
        )
    } else {
        format!("fill file {} was already gone", plan.file.display())
    };
    for n in notes {
        summary.push_str("; ");
        summary.push_str(&n);
    }
    Ok(Reverted {
        evidence: Evidence {
            summary,
            figures: figures_map(&figures),
            residue,
            ..Evidence::default()
        },
    })
}

fn apply_summary(
    plan: &Plan,
    bytes: u64,
    filled: &Filled,
    before: &FsStat,
    after: &FsStat,
) -> String {
    let how = match filled.method {
        Method::Fallocate => "fallocate",
        Method::WriteUnsupported => "writing zeros: the filesystem cannot fallocate",
        Method::WriteAfterNoSpace => "writing zeros after fallocate ran out of space",
    };
    let mut s = format!(
        "filled {} with {} in {} ({how}; {}): available {} -> {}, {}% used",
        plan.dir.display(),
        human(filled.written),
        plan.file_name(),
        plan.amount,
        human(before.available),
        human(after.available),
        after.used_percent()
    );
    if filled.ran_out {
        s.push_str(&format!(
            "; the filesystem ran out of space after {} of the {} planned",
            human(filled.written),
            human(bytes)
        ));
    }
    s
}

/// `.gameday-fill-<fault id>`, for fault ids that are safe in a file name.
fn fill_file_name(fault_id: &str) -> Result<String, FaultError> {
    let ok = !fault_id.is_empty()
        && fault_id.len() <= 200
        && fault_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(FaultError::Invalid(format!(
            "fault id {fault_id:?} cannot name a fill file (expected 1 to 200 letters, digits, '.', '_' or '-')"
        )));
    }
    Ok(format!("{FILL_FILE_PREFIX}{fault_id}"))
}

/// Refuses a plan whose file is not a fill file directly inside its directory. Plans come
/// from the journal too; whatever is in there, revert deletes nothing else.
fn check_fill_path(plan: &Plan) -> Result<(), FaultError> {
    let name_ok = plan
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() > FILL_FILE_PREFIX.len() && n.starts_with(FILL_FILE_PREFIX));
    if name_ok && plan.dir.is_absolute() && plan.file.parent() == Some(plan.dir.as_path()) {
        return Ok(());
    }
    Err(FaultError::CorruptPlan {
        file: plan.file.clone(),
        dir: plan.dir.clone(),
    })
}

/// The fill files among `names`, sorted.
fn fill_files(names: Vec<String>) -> Vec<String> {
    let mut found: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(FILL_FILE_PREFIX))
        .collect();
    found.sort();
    found
}

fn figures_map(figures: &[(&str, u64)]) -> HashMap<String, i64> {
    figures
        .iter()
        .map(|(k, v)| (k.to_string(), i64::try_from(*v).unwrap_or(i64::MAX)))
        .collect()
}
