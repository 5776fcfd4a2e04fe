//! How many bytes a fill writes, from the spec's amount and the filesystem's `statvfs`, and
//! whether the policy lets it. Pure arithmetic, so every edge is unit-tested.
//!
//! "Free" means available to unprivileged users (`f_bavail`, `df`'s "Available") and
//! percentages are `df`'s Use%: used / (used + available). That is what the service (which
//! rarely runs as root) and the operator (who reads `df`) see; the blocks ext4 reserves for
//! root stay out of both.

use std::fmt;
use std::path::Path;

use gameday_proto::fault::DiskAmount;
use serde::{Deserialize, Serialize};

use super::host_policy::Limits;
use crate::faults::FaultError;
use crate::os::disk::FsStat;

/// How much to fill, as journaled in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// Until this percentage is used.
    FillTo(u8),
    /// Until only this many bytes are available.
    LeaveFree(u64),
    /// Exactly this many bytes.
    Size(u64),
}

impl From<DiskAmount> for Amount {
    fn from(a: DiskAmount) -> Self {
        match a {
            DiskAmount::FillToPercent(p) => Amount::FillTo(p),
            DiskAmount::LeaveFree(b) => Amount::LeaveFree(b),
            DiskAmount::Size(b) => Amount::Size(b),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::FillTo(p) => write!(f, "fill_to = {p}%"),
            Amount::LeaveFree(b) => write!(f, "leave_free = {}", human(*b)),
            Amount::Size(b) => write!(f, "size = {}", human(*b)),
        }
    }
}

/// The bytes to write so the filesystem reaches `amount`. Errors (invalid input) when there is
/// nothing to fill or the size does not fit: a fill that cannot hurt is a scenario mistake the
/// operator should hear about, not a silent NO_IMPACT.
pub fn bytes_to_fill(amount: Amount, st: &FsStat, dir: &Path) -> Result<u64, FaultError> {
    let capacity = st.capacity();
    if capacity == 0 {
        return Err(FaultError::Invalid(format!(
            "the filesystem holding {} reports no capacity (statvfs: 0 blocks); it cannot be filled",
            dir.display()
        )));
    }
    let (used, available) = (st.used(), st.available);
    let bytes = match amount {
        Amount::FillTo(p) => {
            // Rounded down, so fill_to = max_fill_percent is exactly at the ceiling, never a
            // byte over it.
            let target = (u128::from(capacity) * u128::from(p) / 100) as u64;
            let bytes = whole_blocks(target.saturating_sub(used), st.block_size);
            if bytes == 0 {
                return Err(FaultError::Invalid(format!(
                    "the filesystem holding {} is already {}% used ({} of {}), at or above fill_to = {p}%: there is nothing to fill",
                    dir.display(),
                    st.used_percent(),
                    human(used),
                    human(capacity)
                )));
            }
            bytes
        }
        Amount::LeaveFree(keep) => {
            let bytes = whole_blocks(available.saturating_sub(keep), st.block_size);
            if bytes == 0 {
                return Err(FaultError::Invalid(format!(
                    "the filesystem holding {} has only {} available, already at or below leave_free = {}: there is nothing to fill",
                    dir.display(),
                    human(available),
                    human(keep)
                )));
            }
            bytes
        }
        Amount::Size(size) => {
            if size == 0 {
                return Err(FaultError::Invalid("size must be more than 0 bytes".into()));
            }
            if size > available {
                return Err(FaultError::Invalid(format!(
                    "size = {} is more than the {} available on the filesystem holding {} (fill_to = 100 or leave_free = \"0\" fills it completely)",
                    human(size),
                    human(available),
                    dir.display()
                )));
            }
            size
        }
    };
    Ok(bytes)
}

/// `bytes` rounded down to whole allocation blocks. The filesystem allocates whole blocks
/// anyway; rounding down means a fill_to or leave_free target is reached to within one block
/// and never overshot (`df` rounds Use% up, so one byte over 90% shows as 91%).
fn whole_blocks(bytes: u64, block_size: u64) -> u64 {
    if block_size == 0 {
        return bytes;
    }
    bytes - bytes % block_size
}

/// Refuses a fill of `bytes` that would leave the filesystem fuller than the policy allows.
pub fn check_limits(bytes: u64, st: &FsStat, limits: Limits, dir: &Path) -> Result<(), FaultError> {
    let capacity = u128::from(st.capacity());
    let used_after = u128::from(st.used()) + u128::from(bytes);
    let available_after = st.available.saturating_sub(bytes);
    // Compared exactly (used/capacity > max/100), not on the rounded-up Use%, so a fill_to
    // equal to the ceiling is allowed.
    if used_after * 100 > u128::from(limits.max_fill_percent) * capacity {
        let percent_after = (used_after * 100).div_ceil(capacity.max(1));
        return Err(FaultError::PolicyLimit(format!(
            "policy refuses to fill {} by {}: the filesystem would be {percent_after}% used, above policy.disk_fill.max_fill_percent = {}",
            dir.display(),
            human(bytes),
            limits.max_fill_percent
        )));
    }
    if available_after < limits.min_free {
        return Err(FaultError::PolicyLimit(format!(
            "policy refuses to fill {} by {}: it would leave {} available, less than policy.disk_fill.min_free = {}",
            dir.display(),
            human(bytes),
            human(available_after),
            human(limits.min_free)
        )));
    }
    Ok(())
}

/// Bytes for people: `8.0MiB`, `512B`, exact below 1 KiB.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use gameday_proto::v1::FailureKind;

    use super::*;

    const MIB: u64 = 1 << 20;

    /// A 100 MiB filesystem with `used` MiB used and a root reserve of `reserved` MiB.
    fn fs(used: u64, reserved: u64) -> FsStat {
        FsStat {
            block_size: 4096,
            total: 100 * MIB,
            free: (100 - used) * MIB,
            available: (100 - used - reserved) * MIB,
        }
    }

    fn dir() -> &'static Path {
        Path::new("/srv/data")
    }

    #[test]
    fn fill_to_counts_like_df() {
        // No reserve: 30 used of 100, to 90% → 60 MiB.
        assert_eq!(
            bytes_to_fill(Amount::FillTo(90), &fs(30, 0), dir()).unwrap(),
            60 * MIB
        );
        // A 5 MiB root reserve: capacity is 95 MiB; 90% of it is 85.5 MiB; 30 are used.
        let bytes = bytes_to_fill(Amount::FillTo(90), &fs(30, 5), dir()).unwrap();
        assert_eq!(bytes, 95 * MIB * 90 / 100 - 30 * MIB);
        // fill_to = 100 takes everything a user could write.
        assert_eq!(
            bytes_to_fill(Amount::FillTo(100), &fs(30, 5), dir()).unwrap(),
            65 * MIB
        );
    }

    #[test]
    fn already_above_fill_to_is_explained() {
        let err = bytes_to_fill(Amount::FillTo(50), &fs(60, 0), dir()).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Invalid, "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("already 60% used"), "{msg}");
        assert!(msg.contains("fill_to = 50%"), "{msg}");
        assert!(msg.contains("/srv/data"), "{msg}");
        // Exactly at the target is nothing to do as well.
        assert!(bytes_to_fill(Amount::FillTo(60), &fs(60, 0), dir()).is_err());
    }

    #[test]
    fn leave_free_and_size() {
        assert_eq!(
            bytes_to_fill(Amount::LeaveFree(MIB), &fs(30, 0), dir()).unwrap(),
            69 * MIB
        );
        assert_eq!(
            bytes_to_fill(Amount::LeaveFree(0), &fs(30, 10), dir()).unwrap(),
            60 * MIB
        );
        let err = bytes_to_fill(Amount::LeaveFree(80 * MIB), &fs(30, 0), dir()).unwrap_err();
        assert!(err.to_string().contains("70.0MiB available"), "{err}");
        assert_eq!(
            bytes_to_fill(Amount::Size(8 * MIB), &fs(30, 0), dir()).unwrap(),
            8 * MIB
        );
        let err = bytes_to_fill(Amount::Size(71 * MIB), &fs(30, 0), dir()).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Invalid);
        assert!(err.to_string().contains("fill_to = 100"), "{err}");
        assert!(bytes_to_fill(Amount::Size(0), &fs(30, 0), dir()).is_err());
    }

    #[test]
    fn empty_filesystem_is_refused() {
        let st = FsStat {
            block_size: 0,
            total: 0,
            free: 0,
            available: 0,
        };
        assert!(bytes_to_fill(Amount::FillTo(90), &st, dir()).is_err());
    }

    #[test]
    fn ceiling_allows_exactly_its_percentage() {
        let limits = Limits {
            max_fill_percent: 95,
            min_free: 0,
        };
        let st = fs(30, 3);
        let exact = (u128::from(st.capacity()) * 95 / 100) as u64 - st.used();
        assert!(check_limits(exact, &st, limits, dir()).is_ok());
        assert!(check_limits(exact + 1, &st, limits, dir()).is_err());
        let at = bytes_to_fill(Amount::FillTo(95), &st, dir()).unwrap();
        assert!(at <= exact && exact - at < 4096, "{at} vs {exact}");
        assert!(check_limits(at, &st, limits, dir()).is_ok());
        let full = bytes_to_fill(Amount::FillTo(100), &st, dir()).unwrap();
        let err = check_limits(full, &st, limits, dir()).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
        assert!(
            err.to_string()
                .contains("100% used, above policy.disk_fill.max_fill_percent = 95"),
            "{err}"
        );
    }

    #[test]
    fn targets_are_whole_blocks_and_never_overshot() {
        // 1000 blocks of 4 KiB, 301 used: 90% is 900 blocks' worth exactly.
        let st = FsStat {
            block_size: 4096,
            total: 1000 * 4096,
            free: 699 * 4096,
            available: 699 * 4096,
        };
        assert_eq!(
            bytes_to_fill(Amount::FillTo(90), &st, dir()).unwrap(),
            599 * 4096
        );
        // leave_free = 1000 bytes keeps a whole block free, not less than asked.
        assert_eq!(
            bytes_to_fill(Amount::LeaveFree(1000), &st, dir()).unwrap(),
            698 * 4096
        );
        // Less than a block short of the target is nothing to fill.
        let near = FsStat {
            free: 100 * 4096 + 100,
            available: 100 * 4096 + 100,
            ..st
        };
        assert!(bytes_to_fill(Amount::FillTo(90), &near, dir()).is_err());
        // size is taken as asked.
        assert_eq!(bytes_to_fill(Amount::Size(1000), &st, dir()).unwrap(), 1000);
    }

    #[test]
    fn min_free_floor() {
        let limits = Limits {
            max_fill_percent: 100,
            min_free: 10 * MIB,
        };
        let st = fs(30, 0);
        assert!(check_limits(60 * MIB, &st, limits, dir()).is_ok());
        let err = check_limits(61 * MIB, &st, limits, dir()).unwrap_err();
        assert!(err.to_string().contains("min_free = 10.0MiB"), "{err}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512B");
        assert_eq!(human(8 * MIB), "8.0MiB");
        assert_eq!(human(1536), "1.5KiB");
        assert_eq!(human(3 << 30), "3.0GiB");
    }
}
