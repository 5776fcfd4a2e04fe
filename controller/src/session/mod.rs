//! Game-day sessions: one file listing scenarios to run one after another with pauses for
//! discussion, and the combined report a team takes away (the four timings of every run, what
//! monitoring missed, the action items).

mod summary;

use std::path::{Path, PathBuf};

use gameday_proto::Duration;
use serde::{Deserialize, Serialize};

use crate::report::ScenarioReport;

pub use summary::{render_html, render_text};

/// A session file, checked: every scenario exists and is valid.
#[derive(Clone, Debug)]
pub struct Session {
    /// The session's name ("December game day").
    pub name: String,
    /// The scenarios, in order.
    pub entries: Vec<Entry>,
}

/// One scenario of a session.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its file, resolved against the session file's directory.
    pub file: PathBuf,
    /// The pause after it, if any.
    pub pause_after: Option<Pause>,
}

/// A pause for discussion between two scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// This long, or until `gameday continue` if that comes first.
    For(Duration),
    /// Until `gameday continue`.
    Manual,
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pause::For(d) => write!(f, "{d}"),
            Pause::Manual => f.write_str("manual"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    name: String,
    scenarios: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    file: PathBuf,
    #[serde(default)]
    pause_after: Option<String>,
}

/// Most scenarios one session may list.
pub const MAX_SCENARIOS: usize = 100;

/// Reads and checks a session file; every problem found, one per line, each naming the file
/// (and line and column, for the session file's own syntax).
pub fn load(path: &Path) -> Result<Session, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let raw: RawSession = toml::from_str(&text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| gameday_proto::position::line_column(&text, s.start))
            .unwrap_or((1, 1));
        format!("{shown}:{line}:{column}: {}", e.message())
    })?;
    let mut problems = Vec::new();
    if raw.name.trim().is_empty() || raw.name.chars().any(char::is_control) {
        problems.push(format!("{shown}: `name` must be a non-empty line of text"));
    }
    if raw.scenarios.is_empty() || raw.scenarios.len() > MAX_SCENARIOS {
        problems.push(format!(
            "{shown}: a session lists 1 to {MAX_SCENARIOS} scenarios ([[scenarios]] with file = \"...\"), not {}",
            raw.scenarios.len()
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut entries = Vec::new();
    for (i, e) in raw.scenarios.into_iter().enumerate() {
        let file = if e.file.is_relative() {
            base.join(&e.file)
        } else {
            e.file.clone()
        };
        if let Err(errors) = crate::scenario::load(&file) {
            problems.push(format!(
                "{shown}: scenario {} ({}): {}",
                i + 1,
                e.file.display(),
                errors.to_string().lines().next().unwrap_or_default()
            ));
        }
        let pause_after = match e.pause_after.as_deref() {
            None => None,
            Some("manual") => Some(Pause::Manual),
            Some(d) => match d.parse::<Duration>() {
                Ok(d) if !d.get().is_zero() => Some(Pause::For(d)),
                Ok(_) => None,
                Err(err) => {
                    problems.push(format!(
                        "{shown}: scenario {} ({}): pause_after {d:?}: {err} (or \"manual\")",
                        i + 1,
                        e.file.display()
                    ));
                    None
                }
            },
        };
        entries.push(Entry { file, pause_after });
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(Session {
        name: raw.name,
        entries,
    })
}

/// What a session did: every scenario's report, with the notes added up to the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionReport {
    /// The session's id (`gameday continue` takes it).
    pub session: String,
    /// Its name.
    pub name: String,
    /// Every scenario's report, in the order they ran.
    pub scenarios: Vec<ScenarioReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_session_names_its_scenarios_relative_to_itself_with_pauses() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", crate::scenario::fixture::MINIMAL);
        let s = write(
            dir.path(),
            "day.toml",
            "name = \"December\"\n[[scenarios]]\nfile = \"a.toml\"\npause_after = \"manual\"\n[[scenarios]]\nfile = \"a.toml\"\npause_after = \"5m\"\n",
        );
        let session = load(&s).unwrap();
        assert_eq!(session.entries[0].file, dir.path().join("a.toml"));
        assert_eq!(session.entries[0].pause_after, Some(Pause::Manual));
        assert_eq!(session.entries[1].pause_after.unwrap().to_string(), "5m");
    }

    #[test]
    fn every_problem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bad.toml", "name = \"x\"\n");
        let s = write(
            dir.path(),
            "day.toml",
            "name = \"D\"\n[[scenarios]]\nfile = \"bad.toml\"\n[[scenarios]]\nfile = \"gone.toml\"\npause_after = \"soon\"\n",
        );
        let e = load(&s).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(lines[0].contains("scenario 1 (bad.toml): "), "{e}");
        assert!(lines[1].contains("scenario 2 (gone.toml): "), "{e}");
        assert!(lines[2].contains("pause_after \"soon\""), "{e}");
        let typo = write(
            dir.path(),
            "typo.toml",
            "name = \"D\"\n[[scenario]]\nfile = \"a\"\n",
        );
        assert!(
            load(&typo).unwrap_err().contains("typo.toml:2:"),
            "unknown key at its line"
        );
    }
}
