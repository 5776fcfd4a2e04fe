//! Hosts mode: a marked block of poisoned entries goes at the top of the hosts file (the
//! resolver library uses the first entry for a name, so the top wins over the host's own
//! entries); revert writes the original bytes back exactly.
//!
//! The original bytes travel in the plan, which is journaled before the file is touched, so an
//! agent restarted after a crash restores them byte for byte.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use gameday_proto::v1::Evidence;
use serde::{Deserialize, Serialize};

use super::{label, Plan};
use crate::faults::{Applied, FaultError, Reverted};
use crate::os::dns::{DnsFiles, DnsOsError};

/// Hosts files larger than this are refused: the plan carries the whole file into the
/// journal. Generous for ad-blocking lists of ~100k lines.
pub const MAX_HOSTS_BYTES: u64 = 4 << 20;

/// The file to poison and what it held before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsPlan {
    /// The hosts file (from the host's policy).
    pub path: PathBuf,
    /// Its exact bytes before the fault, hex-encoded in the journal.
    #[serde(with = "hex_bytes")]
    pub original: Vec<u8>,
}

/// The first line of the block: `# gameday <fault_id> BEGIN ...`.
fn begin_line(fault_id: &str) -> String {
    format!(
        "# gameday {} BEGIN: poisoned by the gameday agent, removed when the fault is reverted",
        label(fault_id)
    )
}

/// The block `apply` puts on top of the file, in the file's own line ending (CRLF when the
/// original uses it), one `ADDRESS NAME` line per name.
pub fn block(fault_id: &str, names: &[String], address: IpAddr, crlf: bool) -> Vec<u8> {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut text = begin_line(fault_id);
    text.push_str(eol);
    for name in names {
        text.push_str(&format!("{address} {name}{eol}"));
    }
    text.push_str(&format!("# gameday {} END{eol}", label(fault_id)));
    text.into_bytes()
}

/// The file's content while poisoned: the block, then the original untouched.
pub fn poisoned(plan: &Plan, hosts: &HostsPlan, address: IpAddr) -> Vec<u8> {
    let crlf = hosts.original.windows(2).any(|w| w == b"\r\n");
    let names: Vec<String> = plan.names.iter().map(|n| n.to_string()).collect();
    let mut bytes = block(&plan.fault_id, &names, address, crlf);
    bytes.extend_from_slice(&hosts.original);
    bytes
}

/// The first gameday BEGIN line in `bytes`, if any: another fault's block, live or left over.
pub fn existing_block(bytes: &[u8]) -> Option<String> {
    bytes
        .split(|b| *b == b'\n')
        .map(|line| {
            String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_string()
        })
        .find(|line| line.starts_with("# gameday ") && line.contains(" BEGIN"))
}

/// Whether `bytes` still hold this fault's BEGIN line.
fn holds_block(bytes: &[u8], fault_id: &str) -> bool {
    let begin = begin_line(fault_id);
    bytes
        .split(|b| *b == b'\n')
        .any(|line| line.strip_suffix(b"\r").unwrap_or(line) == begin.as_bytes())
}

/// Reads the file as it is before the fault. Refuses a file that already holds a gameday
/// block: two faults stacking blocks would restore each other's poison on revert.
pub fn prepare(path: &Path, files: &dyn DnsFiles) -> Result<HostsPlan, FaultError> {
    files
        .check_writable(path)
        .map_err(FaultError::HostsFileNotWritable)?;
    let original = files
        .read(path, MAX_HOSTS_BYTES)
        .map_err(FaultError::dns("cannot read the hosts file"))?;
    if let Some(line) = existing_block(&original) {
        return Err(FaultError::Invalid(format!(
            "{} already holds a gameday block ({line:?}): another hosts-mode fault is live or \
             one was left behind; one at a time",
            path.display()
        )));
    }
    Ok(HostsPlan {
        path: path.to_path_buf(),
        original,
    })
}

/// Writes the poisoned file, if the file is still what the plan read.
pub fn apply(
    plan: &Plan,
    hosts: &HostsPlan,
    address: IpAddr,
    files: &dyn DnsFiles,
) -> Result<Applied, FaultError> {
    let now = files
        .read(&hosts.path, MAX_HOSTS_BYTES)
        .map_err(FaultError::dns("cannot read the hosts file"))?;
    if now != hosts.original {
        return Err(FaultError::Invalid(format!(
            "{} changed since the fault was planned; not poisoning a file we would then \
             restore to a stale copy",
            hosts.path.display()
        )));
    }
    let bytes = poisoned(plan, hosts, address);
    files
        .write_in_place(&hosts.path, &bytes)
        .map_err(FaultError::dns("cannot write the hosts file"))?;
    let effect_at = Instant::now();
    let summary = format!(
        "{} now maps {} to {address} ({} entries on top of the original {} bytes)",
        hosts.path.display(),
        plan.names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        plan.names.len(),
        hosts.original.len()
    );
    // `live` logs the one line for the host owner.
    tracing::debug!(%summary, "dns_poison applied (hosts mode)");
    Ok(Applied {
        effect_at,
        evidence: Evidence {
            summary,
            figures: [("names_poisoned".to_string(), plan.names.len() as i64)].into(),
            ..Evidence::default()
        },
    })
}

/// Writes the original bytes back and checks they stuck.
///
/// A file that holds our block plus other changes was also changed by someone else while
/// poisoned. The original still wins: it is the one state known to be good, and the block
/// must go. The discarded content is logged and the evidence says so. A file with no trace of
/// our block at all is left alone (writing an old copy over it would be a change of our own)
/// and the difference is reported as residue.
pub fn revert(
    plan: &Plan,
    hosts: &HostsPlan,
    address: IpAddr,
    files: &dyn DnsFiles,
) -> Result<Reverted, FaultError> {
    let path = hosts.path.display().to_string();
    let now = match files.read(&hosts.path, MAX_HOSTS_BYTES) {
        Ok(bytes) => Some(bytes),
        Err(DnsOsError::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            None
        }
        Err(DnsOsError::File { source, .. })
            if source.kind() == std::io::ErrorKind::InvalidData =>
        {
            // Grown past the limit while poisoned: not ours, but the original still goes back.
            Some(Vec::new())
        }
        Err(source) => {
            return Err(FaultError::Dns {
                doing: "cannot read the hosts file",
                source,
            })
        }
    };
    let Some(now) = now else {
        // Recreating it would guess its owner and mode; say it loudly instead.
        return Ok(Reverted {
            evidence: Evidence {
                summary: format!("{path} was deleted while poisoned; not recreated"),
                residue: vec![format!(
                    "hosts file {path} no longer exists (the original was {} bytes)",
                    hosts.original.len()
                )],
                ..Evidence::default()
            },
        });
    };
    if now == hosts.original {
        return Ok(Reverted {
            evidence: Evidence {
                summary: format!("{path} already holds its original content"),
                ..Evidence::default()
            },
        });
    }
    let concurrent = now != poisoned(plan, hosts, address);
    if concurrent && !holds_block(&now, &plan.fault_id) {
        // Not a trace of this fault: someone else rewrote the file (or it changed before the
        // fault was ever applied). Writing our old copy over it would be our change, not a
        // revert; the difference is reported instead.
        return Ok(Reverted {
            evidence: Evidence {
                summary: format!("{path} no longer holds this fault's block; left as it is"),
                figures: [("hosts_concurrent_change".to_string(), 1)].into(),
                residue: vec![format!(
                    "hosts file {path} differs from its original ({} bytes, the original had \
                     {}) and holds no gameday block: someone else rewrote it while poisoned",
                    now.len(),
                    hosts.original.len()
                )],
                ..Evidence::default()
            },
        });
    }
    if concurrent {
        tracing::warn!(
            path = %path,
            discarded = %String::from_utf8_lossy(&now[..now.len().min(4096)]),
            "the hosts file was changed by someone else while poisoned; restoring the original \
             and discarding that change"
        );
    }
    files
        .write_in_place(&hosts.path, &hosts.original)
        .map_err(FaultError::dns("cannot restore the hosts file"))?;
    let mut residue = Vec::new();
    match files.read(&hosts.path, MAX_HOSTS_BYTES) {
        Ok(after) if after == hosts.original => {}
        Ok(after) => residue.push(format!(
            "hosts file {path} differs from its original after the revert ({} bytes, the \
             original had {})",
            after.len(),
            hosts.original.len()
        )),
        Err(e) => residue.push(format!("hosts file {path} cannot be read back: {e}")),
    }
    let mut summary = format!(
        "restored {path} to its original {} bytes",
        hosts.original.len()
    );
    if concurrent {
        summary.push_str(
            "; it had also been changed by someone else while poisoned, and that change was \
             discarded (see the agent's log)",
        );
    }
    Ok(Reverted {
        evidence: Evidence {
            summary,
            figures: [("hosts_concurrent_change".to_string(), i64::from(concurrent))].into(),
            residue,
            ..Evidence::default()
        },
    })
}

/// Bytes as a lower-case hex string: exact for any content (CR, NUL, invalid UTF-8), and
/// readable enough in a journal entry.
mod hex_bytes {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("hex text of odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom(format!("not hex at offset {i}")))
            })
            .collect()
    }
}
