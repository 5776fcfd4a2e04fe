//! Bounded echoes of what the user wrote: error messages quote input, and a 1 MB key or value
//! must not come back as a 1 MB line.

use std::fmt::Write as _;

use super::limits::MAX_ECHO_CHARS;

/// `text` quoted for an error message (`"like this"`), cut after [`MAX_ECHO_CHARS`] characters
/// with the full length said (`"aaaa…"… (1048576 characters)`).
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &text[..cut], text.chars().count()),
    }
}

/// `text` for an error message between backticks (`` `like_this` ``), cut like [`quoted`].
/// Characters that would break the line or hide themselves are written as escapes.
pub(crate) fn ticked(text: &str) -> String {
    let (head, cut) = match text.char_indices().nth(MAX_ECHO_CHARS) {
        None => (text, false),
        Some((at, _)) => (&text[..at], true),
    };
    let mut out = String::with_capacity(head.len() + 2);
    out.push('`');
    for c in head.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    if cut {
        let _ = write!(out, "… ({} characters)", text.chars().count());
    }
    out
}

/// `message` (from toml or serde, which quote input in full) with every quoted run of more than
/// [`MAX_ECHO_CHARS`] characters cut short; backticks and double quotes both count as quotes,
/// and a backslash escapes the next character inside double quotes.
pub(crate) fn shorten_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' && c != '`' {
            continue;
        }
        let mut kept = 0;
        let mut dropped = false;
        let mut escaped = false;
        let mut closed = false;
        for inner in chars.by_ref() {
            if inner == c && !escaped {
                closed = true;
                break;
            }
            escaped = c == '"' && inner == '\\' && !escaped;
            if kept < MAX_ECHO_CHARS {
                out.push(inner);
                kept += 1;
            } else {
                dropped = true;
            }
        }
        if dropped {
            out.push('…');
        }
        if closed {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_whole() {
        assert_eq!(quoted("fast"), "\"fast\"");
        assert_eq!(ticked("retries"), "`retries`");
        assert_eq!(ticked("a\0b"), "`a\\u{0}b`");
    }

    #[test]
    fn long_text_is_cut_and_its_length_said() {
        let long = "k".repeat(1_000_000);
        let shown = quoted(&long);
        assert_eq!(
            shown,
            format!("\"{}\"… (1000000 characters)", "k".repeat(MAX_ECHO_CHARS))
        );
        let shown = ticked(&long);
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.ends_with("`… (1000000 characters)"), "{shown}");
    }

    #[test]
    fn messages_from_serde_keep_their_shape_with_short_quotes() {
        let long = "v".repeat(500);
        let message = format!("invalid type: string \"{long}\", expected i64");
        let short = shorten_quotes(&message);
        assert_eq!(
            short,
            format!(
                "invalid type: string \"{}…\", expected i64",
                "v".repeat(MAX_ECHO_CHARS)
            )
        );
        let message = "unknown variant `x`, expected `all` or `one`";
        assert_eq!(shorten_quotes(message), message);
        // An escaped quote does not end the quoted run.
        assert_eq!(shorten_quotes(r#"got "a\"b", ok"#), r#"got "a\"b", ok"#);
    }
}
