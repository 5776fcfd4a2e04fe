//! The revert's residue check: what the fault may have left behind, told apart from what the
//! service did meanwhile.

use std::time::{Duration, Instant};

use super::amount::human;
use super::{fill_files, Plan};
use crate::os::disk::{DiskError, DiskOs, FsStat};

/// How often revert looks at free space again while waiting for it to come back.
const SETTLE_POLL: Duration = Duration::from_millis(10);

/// Looks at the fill files in the plan's directory after the delete. Returns the residue (this
/// fault's file still there, or a directory that cannot be checked) and notes for the summary
/// (other fill files that appeared while the fault held).
pub(super) fn listing(plan: &Plan, os: &dyn DiskOs) -> (Vec<String>, Vec<String>) {
    let name = plan.file_name();
    let mut residue = Vec::new();
    let mut notes = Vec::new();
    match os.list_dir(&plan.dir) {
        Ok(names) => {
            for n in fill_files(names) {
                if n == name {
                    residue.push(format!(
                        "fill file {} is still present after revert",
                        plan.file.display()
                    ));
                } else if !plan.fill_files_before.contains(&n) {
                    // Another disk_fill fault in the same directory may be live: its file is
                    // not this fault's residue, but the operator should know it is there.
                    notes.push(format!("another fill file is present: {n}"));
                }
            }
        }
        // The directory (or its filesystem) is gone: nothing of ours can be left in it.
        Err(e) if e.is_not_found() => {}
        Err(e) => residue.push(format!(
            "cannot list {} to check that the fill file is gone: {e}",
            plan.dir.display()
        )),
    }
    (residue, notes)
}

/// The filesystem after the delete, and the free-space residue if any: polled for up to
/// `grace` while space is missing, since the blocks are freed only when the last reference to
/// the deleted file goes. Revert runs off the async runtime, so blocking here is fine.
pub(super) fn free_space_settled(
    plan: &Plan,
    length: u64,
    os: &dyn DiskOs,
    grace: Duration,
) -> Result<(FsStat, Option<String>), DiskError> {
    let deadline = Instant::now() + grace;
    loop {
        let now = os.statvfs(&plan.dir)?;
        let leftover = free_space(plan, length, &now);
        if leftover.is_none() || Instant::now() >= deadline {
            return Ok((now, leftover));
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// Space that did not come back after the delete: more than half of what the file held *and*
/// more than 1% of the filesystem. The first bound means the file's own blocks were not freed
/// (a process still holds the deleted file open, so the disk stays full); the second keeps the
/// service's own writes during the fault, which also lower free space, from being blamed on us.
fn free_space(plan: &Plan, length: u64, now: &FsStat) -> Option<String> {
    let missing = plan.available_before.saturating_sub(now.available);
    let bound = (length / 2).max(now.capacity() / 100);
    (length > 0 && missing > bound).then(|| {
        format!(
            "free space on the filesystem holding {} did not come back: {} available before the fill, {} after deleting the {} fill file (is a process holding the deleted file open?)",
            plan.dir.display(),
            human(plan.available_before),
            human(now.available),
            human(length)
        )
    })
}
