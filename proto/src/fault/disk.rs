//! `disk_fill`: fill the filesystem holding a path, in a file the agent names and owns.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{check_duration, duration_from_ms, duration_to_ms, FaultSpecError, MAX_DISK_BYTES};
use crate::bytes::ByteSize;
use crate::v1;
use crate::Duration;

/// `disk_fill`. Built only from [`RawDiskFill`] (or the wire), which checks everything once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawDiskFill", into = "RawDiskFill")]
pub struct DiskFill {
    /// An absolute directory on the filesystem to fill; the fill file is created in it.
    pub path: PathBuf,
    /// How much to fill.
    pub amount: DiskAmount,
    /// How long the disk stays full; until the run reverts it when absent.
    pub duration: Option<Duration>,
}

/// A `disk_fill` table as written, unchecked: exactly one of `fill_to`, `leave_free`, `size`.
/// [`DiskFill::try_from`] reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiskFill {
    /// A directory on the filesystem to fill; the fill file is created in it.
    pub path: PathBuf,
    /// Fill until this percentage (1–100) of the filesystem is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_to: Option<u8>,
    /// Fill until only this much is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_free: Option<ByteSize>,
    /// Write exactly this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
    /// How long the disk stays full; until the run reverts it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

/// How much a disk fill writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskAmount {
    /// Until this percentage is used.
    FillToPercent(u8),
    /// Until this many bytes are free.
    LeaveFree(u64),
    /// This many bytes.
    Size(u64),
}

/// `bytes` when at most [`MAX_DISK_BYTES`].
fn at_most_max(field: &'static str, bytes: ByteSize) -> Result<u64, FaultSpecError> {
    if bytes.0 > MAX_DISK_BYTES {
        return Err(FaultSpecError::Invalid {
            field,
            reason: format!(
                "{bytes} is more than the maximum, {}",
                ByteSize(MAX_DISK_BYTES)
            ),
        });
    }
    Ok(bytes.0)
}

impl RawDiskFill {
    /// The one amount this fill uses.
    fn amount(&self) -> Result<DiskAmount, FaultSpecError> {
        let found = [
            self.fill_to.is_some(),
            self.leave_free.is_some(),
            self.size.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if found != 1 {
            return Err(FaultSpecError::Invalid {
                field: "fill_to",
                reason: format!("disk_fill needs exactly one of `fill_to`, `leave_free` or `size`, found {found}"),
            });
        }
        if let Some(p) = self.fill_to {
            if !(1..=100).contains(&p) {
                return Err(FaultSpecError::Invalid {
                    field: "fill_to",
                    reason: format!("{p} is not a percentage from 1 to 100"),
                });
            }
            return Ok(DiskAmount::FillToPercent(p));
        }
        if let Some(b) = self.leave_free {
            return at_most_max("leave_free", b).map(DiskAmount::LeaveFree);
        }
        let size = self.size.unwrap_or_default();
        if size.0 == 0 {
            return Err(FaultSpecError::Invalid {
                field: "size",
                reason: "must be more than 0 bytes".into(),
            });
        }
        at_most_max("size", size).map(DiskAmount::Size)
    }
}

impl TryFrom<RawDiskFill> for DiskFill {
    type Error = FaultSpecError;

    fn try_from(d: RawDiskFill) -> Result<DiskFill, FaultSpecError> {
        if let Some(duration) = d.duration {
            check_duration(duration)?;
        }
        if d.path.as_os_str().is_empty() {
            return Err(FaultSpecError::Empty { field: "path" });
        }
        if !d.path.is_absolute() {
            return Err(FaultSpecError::Invalid {
                field: "path",
                reason: format!("{:?} is not an absolute path", d.path),
            });
        }
        let amount = d.amount()?;
        Ok(DiskFill {
            path: d.path,
            amount,
            duration: d.duration,
        })
    }
}

impl From<DiskFill> for RawDiskFill {
    fn from(d: DiskFill) -> RawDiskFill {
        let mut raw = RawDiskFill {
            path: d.path,
            duration: d.duration,
            ..RawDiskFill::default()
        };
        match d.amount {
            DiskAmount::FillToPercent(p) => raw.fill_to = Some(p),
            DiskAmount::LeaveFree(b) => raw.leave_free = Some(ByteSize(b)),
            DiskAmount::Size(b) => raw.size = Some(ByteSize(b)),
        }
        raw
    }
}

impl DiskFill {
    pub(super) fn to_wire(&self) -> v1::DiskFill {
        use v1::disk_fill::Amount;
        let amount = match self.amount {
            DiskAmount::FillToPercent(p) => Amount::FillToPercent(u32::from(p)),
            DiskAmount::LeaveFree(b) => Amount::LeaveFreeBytes(b),
            DiskAmount::Size(b) => Amount::SizeBytes(b),
        };
        v1::DiskFill {
            path: self.path.display().to_string(),
            amount: Some(amount),
            duration_ms: duration_to_ms(self.duration),
        }
    }

    /// The wire form read back into the fields as written; [`DiskFill::try_from`] checks them.
    pub(super) fn from_wire(d: &v1::DiskFill) -> Result<RawDiskFill, FaultSpecError> {
        use v1::disk_fill::Amount;
        let mut fill = RawDiskFill {
            path: PathBuf::from(&d.path),
            duration: duration_from_ms(d.duration_ms),
            ..RawDiskFill::default()
        };
        match d.amount {
            Some(Amount::FillToPercent(p)) => {
                fill.fill_to = Some(u8::try_from(p).map_err(|_| FaultSpecError::Invalid {
                    field: "fill_to",
                    reason: format!("{p} is not a percentage"),
                })?)
            }
            Some(Amount::LeaveFreeBytes(b)) => fill.leave_free = Some(ByteSize(b)),
            Some(Amount::SizeBytes(b)) => fill.size = Some(ByteSize(b)),
            None => {}
        }
        Ok(fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(size: Option<u64>, leave_free: Option<u64>) -> Result<DiskFill, FaultSpecError> {
        DiskFill::try_from(RawDiskFill {
            path: PathBuf::from("/tmp"),
            size: size.map(ByteSize),
            leave_free: leave_free.map(ByteSize),
            ..RawDiskFill::default()
        })
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(fill(Some(MAX_DISK_BYTES), None).is_ok());
        assert!(fill(None, Some(MAX_DISK_BYTES)).is_ok());
        for (field, spec) in [
            ("size", fill(Some(MAX_DISK_BYTES + 1), None)),
            ("leave_free", fill(None, Some(u64::MAX))),
        ] {
            let Err(FaultSpecError::Invalid {
                field: named,
                reason,
            }) = spec
            else {
                panic!("{spec:?} accepted");
            };
            assert_eq!(named, field);
            assert!(
                reason.contains("more than the maximum, 1024TiB"),
                "{reason}"
            );
        }
        let wire = v1::DiskFill {
            path: "/tmp".into(),
            amount: Some(v1::disk_fill::Amount::SizeBytes(u64::MAX)),
            duration_ms: 0,
        };
        let spec = v1::FaultSpec {
            kind: Some(v1::fault_spec::Kind::DiskFill(wire)),
        };
        assert!(super::super::Fault::from_wire(&spec).is_err());
    }
}
