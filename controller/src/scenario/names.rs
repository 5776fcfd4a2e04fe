//! Names a scenario gives (the scenario, probes, agents, labels): not blank, and free of
//! control characters, which would truncate or forge the reports, logs, metric labels and file
//! names they end up in.

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    /// Nothing, or only spaces.
    #[error("must not be empty")]
    Empty,
    /// A control character (NUL, a newline, an escape…): names end up in reports, logs, metric
    /// labels and file names, where such characters truncate or forge text.
    #[error(
        "must not contain control characters, found {} at character {position}",
        found.escape_unicode()
    )]
    Control {
        /// The first control character found.
        found: char,
        /// Its 1-based position in the name.
        position: usize,
    },
}

/// Checks a name (scenario, probe, agent, label): not blank, no control characters.
pub(crate) fn check_name(name: &str) -> Result<(), NameError> {
    check_printable(name)?;
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    Ok(())
}

/// Checks a value that may be empty (a label's value) has no control characters.
pub(crate) fn check_printable(text: &str) -> Result<(), NameError> {
    match text.chars().enumerate().find(|(_, c)| c.is_control()) {
        Some((i, found)) => Err(NameError::Control {
            found,
            position: i + 1,
        }),
        None => Ok(()),
    }
}

/// Reads a table of labels (`labels = { role = "web" }`) as written in `field`: every name
/// checked with [`check_name`], every value with [`check_printable`], each refusal reported
/// at its place. `None` when any was refused.
pub(crate) fn label_table(
    diagnostics: &mut super::error::Diagnostics<'_>,
    field: &str,
    entries: &std::collections::BTreeMap<toml::Spanned<String>, toml::Spanned<String>>,
) -> Option<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    let mut ok = true;
    for (key, label) in entries {
        let checked = check_name(key.get_ref())
            .map_err(|e| (key.span(), format!("label names in `{field}` {e}")))
            .and_then(|()| {
                check_printable(label.get_ref())
                    .map_err(|e| (label.span(), format!("label values in `{field}` {e}")))
            });
        match checked {
            Ok(()) => {
                labels.insert(key.get_ref().clone(), label.get_ref().clone());
            }
            Err((span, message)) => {
                diagnostics.error(span, message);
                ok = false;
            }
        }
    }
    ok.then_some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_blanks_and_control_characters() {
        assert_eq!(check_name("web-1"), Ok(()));
        assert_eq!(check_name("rôle → 🦀"), Ok(()));
        assert_eq!(check_name(" "), Err(NameError::Empty));
        assert_eq!(
            check_name("we\0b"),
            Err(NameError::Control {
                found: '\0',
                position: 3
            })
        );
        assert_eq!(
            NameError::Control {
                found: '\0',
                position: 3
            }
            .to_string(),
            "must not contain control characters, found \\u{0} at character 3"
        );
        assert!(check_name("a\nb").is_err());
        assert!(check_name("\u{1b}[31m").is_err());
        assert_eq!(check_printable(""), Ok(()));
        assert!(check_printable("a\tb").is_err());
    }
}
