//! Taking the space: one `fallocate`, else zeros written in chunks until done or out of
//! space, then fsync.

use std::time::Instant;

use crate::os::disk::{DiskError, FillFile};

/// Zeros written per `write` when `fallocate` is not available: large enough to be fast, small
/// enough that running out of space wastes no more than one chunk's attempt.
const CHUNK: usize = 1 << 20;

/// How the file was filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    /// One fallocate call.
    Fallocate,
    /// Zeros written, because the filesystem cannot preallocate.
    WriteUnsupported,
    /// Zeros written after fallocate ran out of space part-way.
    WriteAfterNoSpace,
}

/// The outcome of filling the file.
#[derive(Debug)]
pub(super) struct Filled {
    /// The file's size at the end.
    pub written: u64,
    /// How.
    pub method: Method,
    /// The filesystem ran out of space before `bytes` were written.
    pub ran_out: bool,
    /// Right after the call that took the space.
    pub effect_at: Instant,
}

/// Takes `bytes` of space in `file`: fallocate, else zeros until done or out of space.
pub(super) fn fill(file: &mut dyn FillFile, bytes: u64) -> Result<Filled, DiskError> {
    let method = match file.allocate(bytes) {
        Ok(()) => {
            return Ok(Filled {
                written: bytes,
                method: Method::Fallocate,
                ran_out: false,
                effect_at: Instant::now(),
            })
        }
        Err(e) if e.is_unsupported() => Method::WriteUnsupported,
        // Space went between the statvfs and now (or metadata took its share): write what fits.
        Err(e) if e.is_no_space() => Method::WriteAfterNoSpace,
        Err(e) => return Err(e),
    };
    // A fallocate that ran out part-way may have kept (and sized the file for) what it got.
    let mut offset = file.size()?.min(bytes);
    let zeros = vec![0u8; CHUNK];
    let mut ran_out = false;
    while offset < bytes {
        let n = (bytes - offset).min(CHUNK as u64) as usize;
        match file.write_at(&zeros[..n], offset) {
            Ok(0) => {
                ran_out = true;
                break;
            }
            Ok(w) => offset += w as u64,
            Err(e) if e.is_no_space() => {
                ran_out = true;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    // The space is taken once the writes return (the kernel reserves it for delayed
    // allocation); the fsync only makes it durable.
    let effect_at = Instant::now();
    match file.sync() {
        Ok(()) => {}
        Err(e) if e.is_no_space() => ran_out = true,
        Err(e) => return Err(e),
    }
    Ok(Filled {
        written: offset,
        method,
        ran_out,
        effect_at,
    })
}
