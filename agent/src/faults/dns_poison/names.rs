//! Poisoned names: exact (`api.example`) or `*.suffix` (every name under `suffix`, not
//! `suffix` itself), compared without case and without a trailing dot, as DNS compares them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One name pattern, normalised: lower case, no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamePattern(String);

/// Lower case without the trailing dot of a fully qualified name.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl NamePattern {
    /// Reads `api.example` or `*.example`; the labels follow the rules the scenario checks.
    pub fn parse(text: &str) -> Result<NamePattern, String> {
        let pattern = normalize(text);
        if gameday_proto::fault::is_dns_pattern(&pattern) {
            Ok(NamePattern(pattern))
        } else {
            Err(format!("{text:?} is not a DNS name or a *.suffix wildcard"))
        }
    }

    /// True for `*.suffix` patterns.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The pattern as written in hosts files and reports.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a queried name (already [`normalize`]d) is poisoned by this pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self.0.strip_prefix('*') {
            // `suffix` itself is not under `*.suffix`, and ends_with(".suffix") says so.
            Some(dot_suffix) => name.ends_with(dot_suffix),
            None => name == self.0,
        }
    }

    /// Whether every name `other` poisons is also one this pattern covers (policy allowlists:
    /// `*.example` covers `api.example` and `*.api.example`).
    pub fn covers(&self, other: &NamePattern) -> bool {
        match other.0.strip_prefix("*.") {
            Some(other_suffix) => {
                self.is_wildcard() && (self.0[2..] == *other_suffix || self.matches(other_suffix))
            }
            None => self.matches(&other.0),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NamePattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        NamePattern::parse(&text)
    }
}

impl From<NamePattern> for String {
    fn from(p: NamePattern) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NamePattern {
        NamePattern::parse(s).unwrap()
    }

    #[test]
    fn exact_names_match_without_case_or_trailing_dot() {
        let api = p("API.Example.");
        assert_eq!(api.as_str(), "api.example");
        assert!(api.matches(&normalize("api.EXAMPLE.")));
        assert!(!api.matches("www.api.example"));
        assert!(!api.matches("example"));
    }

    #[test]
    fn wildcards_match_names_below_the_suffix_only() {
        let any = p("*.example");
        assert!(any.is_wildcard());
        assert!(any.matches("api.example"));
        assert!(any.matches("a.b.example"));
        assert!(!any.matches("example"));
        assert!(!any.matches("badexample"));
        assert!(!any.matches("example.org"));
    }

    #[test]
    fn coverage_for_allowlists() {
        assert!(p("*.example").covers(&p("api.example")));
        assert!(p("*.example").covers(&p("*.example")));
        assert!(p("*.example").covers(&p("*.api.example")));
        assert!(!p("*.api.example").covers(&p("*.example")));
        assert!(!p("api.example").covers(&p("*.api.example")));
        assert!(p("api.example").covers(&p("API.example")));
        assert!(!p("api.example").covers(&p("www.api.example")));
    }

    #[test]
    fn rejects_what_is_not_a_name() {
        for bad in ["", "*.", "a b", "a..b", "*", "*.*.x", &"a".repeat(64)] {
            assert!(NamePattern::parse(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&p("*.Example")).unwrap();
        assert_eq!(json, "\"*.example\"");
        assert!(serde_json::from_str::<NamePattern>("\"a b\"").is_err());
    }
}
