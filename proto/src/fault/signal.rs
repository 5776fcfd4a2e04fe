//! The signals a `process_kill` may send, by the names scenarios and policies write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::FaultSpecError;

/// A signal a `process_kill` may send. Stopping is `process_pause`'s job, so SIGSTOP is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum KillSignal {
    /// SIGKILL, the default.
    #[default]
    Kill,
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGHUP.
    Hup,
    /// SIGQUIT.
    Quit,
    /// SIGABRT.
    Abrt,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
}

impl KillSignal {
    /// Every signal, in the order error messages list them.
    pub const ALL: [KillSignal; 8] = [
        KillSignal::Kill,
        KillSignal::Term,
        KillSignal::Int,
        KillSignal::Hup,
        KillSignal::Quit,
        KillSignal::Abrt,
        KillSignal::Usr1,
        KillSignal::Usr2,
    ];

    /// The full name, `SIGKILL`.
    pub fn name(self) -> &'static str {
        match self {
            KillSignal::Kill => "SIGKILL",
            KillSignal::Term => "SIGTERM",
            KillSignal::Int => "SIGINT",
            KillSignal::Hup => "SIGHUP",
            KillSignal::Quit => "SIGQUIT",
            KillSignal::Abrt => "SIGABRT",
            KillSignal::Usr1 => "SIGUSR1",
            KillSignal::Usr2 => "SIGUSR2",
        }
    }

    /// Every name, comma-separated, for error messages.
    pub fn expected() -> String {
        KillSignal::ALL.map(KillSignal::name).join(", ")
    }
}

impl FromStr for KillSignal {
    type Err = FaultSpecError;

    /// `SIGKILL`, `KILL`, `sigkill` and `kill` all mean SIGKILL, as `kill -s` takes them.
    fn from_str(name: &str) -> Result<KillSignal, FaultSpecError> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        KillSignal::ALL
            .into_iter()
            .find(|s| &s.name()[3..] == bare)
            .ok_or_else(|| FaultSpecError::Signal {
                signal: name.to_string(),
            })
    }
}

impl fmt::Display for KillSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<KillSignal> for &'static str {
    fn from(v: KillSignal) -> &'static str {
        v.name()
    }
}

impl TryFrom<String> for KillSignal {
    type Error = <KillSignal as FromStr>::Err;
    fn try_from(name: String) -> Result<KillSignal, Self::Error> {
        name.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_read_with_or_without_their_sig_prefix() {
        let read = |s: &str| s.parse::<KillSignal>().ok();
        assert_eq!(read("SIGKILL"), Some(KillSignal::Kill));
        assert_eq!(read("KILL"), Some(KillSignal::Kill));
        assert_eq!(read("term"), Some(KillSignal::Term));
        assert_eq!(read("SigUsr1"), Some(KillSignal::Usr1));
        assert_eq!(read("STOP"), None, "pausing is process_pause's job");
        assert_eq!(read("SIG"), None);
        assert_eq!(read(""), None);
        for s in KillSignal::ALL {
            assert_eq!(read(&s.to_string()), Some(s));
        }
    }
}
