//! The nftables boundary: the one place the agent runs `nft`, always through the `nftables`
//! crate's JSON interface (`nft -j`), never with hand-built rule strings.
//!
//! Fault logic only sees the [`Firewall`] trait, so it can be unit-tested with a recording
//! fake. `nft` acts on the network namespace of the thread that starts it, which is what lets
//! the integration tests aim the real thing at namespaces they create.

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::process::{Command, Stdio};

use nftables::helper::{self, NftablesError};
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables, Table};
use nftables::types::NfFamily;

/// An nftables operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The `nft` program is not installed (or not on the agent's `PATH`).
    #[error("nft not found ({program}): install the nftables package")]
    NotFound {
        /// The program the agent tried to run.
        program: String,
    },
    /// The kernel refused: the agent lacks `CAP_NET_ADMIN`.
    #[error("no permission for nftables (the agent needs CAP_NET_ADMIN): {message}")]
    Permission {
        /// What `nft` said.
        message: String,
    },
    /// `nft` ran and failed.
    #[error("nft failed while {what}: {message}")]
    Failed {
        /// What the agent was doing, e.g. `applying a ruleset`.
        what: String,
        /// What `nft` said.
        message: String,
    },
    /// `nft` answered with something that is not the JSON the agent expects.
    #[error("nft gave unreadable output while {what}: {message}")]
    Output {
        /// What the agent was doing.
        what: String,
        /// The decoder's complaint.
        message: String,
    },
}

/// The nftables operations faults need. Every call is one `nft` run, so every change is one
/// kernel transaction: it takes effect whole or not at all.
pub trait Firewall: Send + Sync {
    /// Applies a batch of commands in one transaction (`nft -j -f -`).
    fn apply(&self, batch: &Nftables<'_>) -> Result<(), NftError>;

    /// One table with its chains, rules and counters; `None` when there is no such table.
    fn table(&self, family: NfFamily, name: &str) -> Result<Option<Nftables<'static>>, NftError>;

    /// Deletes a table and everything in it. `Ok(false)` when it was not there: deleting is
    /// idempotent.
    fn delete_table(&self, family: NfFamily, name: &str) -> Result<bool, NftError>;

    /// Every table, as `(family, name)`. Also the cheapest proof that nftables is usable here.
    fn tables(&self) -> Result<Vec<(String, String)>, NftError>;

    /// The whole ruleset without counters (`nft -j -s list ruleset`), as raw JSON so that
    /// constructs the `nftables` crate does not model still read.
    fn ruleset(&self) -> Result<serde_json::Value, NftError>;
}

/// The real `nft`.
#[derive(Clone, Debug, Default)]
pub struct Nft {
    /// The program to run; `nft` from `PATH` when `None`.
    program: Option<OsString>,
}

impl Nft {
    /// Runs `program` instead of `nft` from `PATH`.
    pub fn with_program(program: impl Into<OsString>) -> Nft {
        Nft {
            program: Some(program.into()),
        }
    }

    fn program(&self) -> Option<&std::ffi::OsStr> {
        self.program.as_deref()
    }

    fn program_name(&self) -> String {
        self.program
            .as_ref()
            .map_or_else(|| "nft".to_string(), |p| p.to_string_lossy().into_owned())
    }

    /// `nft -j -f -` with the JSON batch on stdin: what `helper::apply_ruleset` runs, except
    /// that nft's stderr is captured (the helper lets it through to the agent's own stderr
    /// and reports failures without it), because the operator needs nft's reason.
    fn run_batch(&self, payload: &str) -> Result<(), NftablesError> {
        let program: OsString = self.program.clone().unwrap_or_else(|| "nft".into());
        let execution = |inner| NftablesError::NftExecution {
            program: program.clone(),
            inner,
        };
        let mut child = Command::new(&program)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(execution)?;
        if let Some(mut stdin) = child.stdin.take() {
            // Dropped at the end of this block: nft reads to EOF before it acts.
            stdin.write_all(payload.as_bytes()).map_err(execution)?;
        }
        let out = child.wait_with_output().map_err(execution)?;
        if out.status.success() {
            return Ok(());
        }
        Err(NftablesError::NftFailed {
            program: program.clone(),
            hint: "applying ruleset".into(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn error(&self, what: &str, e: NftablesError) -> NftError {
        match e {
            NftablesError::NftExecution { inner, .. }
                if inner.kind() == io::ErrorKind::NotFound =>
            {
                NftError::NotFound {
                    program: self.program_name(),
                }
            }
            NftablesError::NftExecution { inner, .. } => NftError::Failed {
                what: what.to_string(),
                message: format!("cannot run {}: {inner}", self.program_name()),
            },
            NftablesError::NftFailed { stderr, .. } => {
                let message = stderr.trim().to_string();
                if is_permission_error(&message) {
                    NftError::Permission { message }
                } else {
                    NftError::Failed {
                        what: what.to_string(),
                        message,
                    }
                }
            }
            NftablesError::NftOutputEncoding { inner, .. } => NftError::Output {
                what: what.to_string(),
                message: inner.to_string(),
            },
            NftablesError::NftInvalidJson(inner) => NftError::Output {
                what: what.to_string(),
                message: inner.to_string(),
            },
        }
    }
}

/// `nft` reports a missing capability as EPERM from netlink.
fn is_permission_error(stderr: &str) -> bool {
    stderr.contains("Operation not permitted") || stderr.contains("Permission denied")
}

/// `nft` reports a missing table as ENOENT.
fn is_missing(e: &NftError) -> bool {
    matches!(e, NftError::Failed { message, .. } if message.contains("No such file or directory"))
}

/// The family as `nft` spells it on its command line.
pub fn family_name(family: NfFamily) -> &'static str {
    match family {
        NfFamily::IP => "ip",
        NfFamily::IP6 => "ip6",
        NfFamily::INet => "inet",
        NfFamily::ARP => "arp",
        NfFamily::Bridge => "bridge",
        NfFamily::NetDev => "netdev",
    }
}

impl Firewall for Nft {
    fn apply(&self, batch: &Nftables<'_>) -> Result<(), NftError> {
        let what = "applying a ruleset";
        let payload = serde_json::to_string(batch).map_err(|e| NftError::Output {
            what: what.to_string(),
            message: e.to_string(),
        })?;
        self.run_batch(&payload).map_err(|e| self.error(what, e))
    }

    fn table(&self, family: NfFamily, name: &str) -> Result<Option<Nftables<'static>>, NftError> {
        let args = ["list", "table", family_name(family), name];
        match helper::get_current_ruleset_with_args(self.program(), &args) {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                let e = self.error(&format!("listing table {} {name}", args[2]), e);
                if is_missing(&e) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn delete_table(&self, family: NfFamily, name: &str) -> Result<bool, NftError> {
        let batch = Nftables {
            objects: vec![NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(
                Table {
                    family,
                    name: name.to_string().into(),
                    handle: None,
                },
            )))]
            .into(),
        };
        match self.apply(&batch) {
            Ok(()) => Ok(true),
            // `nft destroy` (idempotent delete) needs nftables 1.0.8; older ones say ENOENT,
            // and a table that is not there is exactly what a delete wants.
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => match self.table(family, name) {
                Ok(None) => Ok(false),
                _ => Err(e),
            },
        }
    }

    fn tables(&self) -> Result<Vec<(String, String)>, NftError> {
        let listing = helper::get_current_ruleset_with_args(self.program(), &["list", "tables"])
            .map_err(|e| self.error("listing tables", e))?;
        Ok(listing
            .objects
            .iter()
            .filter_map(|o| match o {
                NfObject::ListObject(NfListObject::Table(t)) => {
                    Some((family_name(t.family).to_string(), t.name.to_string()))
                }
                _ => None,
            })
            .collect())
    }

    fn ruleset(&self) -> Result<serde_json::Value, NftError> {
        let what = "listing the ruleset";
        let raw = helper::get_current_ruleset_raw(self.program(), &["-s", "list", "ruleset"])
            .map_err(|e| self.error(what, e))?;
        serde_json::from_str(&raw).map_err(|e| NftError::Output {
            what: what.to_string(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_named() {
        let nft = Nft::with_program("/nonexistent/gameday-test-nft");
        let err = nft.tables().unwrap_err();
        assert!(matches!(err, NftError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/gameday-test-nft"));
    }

    #[test]
    fn permission_errors_are_told_apart() {
        assert!(is_permission_error(
            "Error: Could not process rule: Operation not permitted"
        ));
        assert!(!is_permission_error(
            "Error: Could not process rule: No such file or directory"
        ));
        let missing = NftError::Failed {
            what: "x".into(),
            message: "Error: No such file or directory\nlist table inet nope".into(),
        };
        assert!(is_missing(&missing));
    }
}
