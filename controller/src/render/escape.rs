//! Escaping untrusted text (scenario names, probe errors, agent evidence) for XML, HTML, SVG
//! and Markdown, so no report can be broken or scripted by what a service answered.

/// Escapes text for XML, HTML and SVG, in element content and in quoted attributes alike.
///
/// Characters XML 1.0 cannot carry at all, even escaped (control characters other than tab,
/// newline and carriage return, and the non-characters U+FFFE/U+FFFF), become U+FFFD.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Newlines and tabs would be normalised to spaces inside attributes; keep them.
            '\n' => out.push('\n'),
            '\t' => out.push('\t'),
            '\r' => out.push_str("&#13;"),
            c if allowed_in_xml(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Like [`xml`], for attribute values: newlines and tabs are kept as character references so
/// attribute-value normalisation does not turn them into spaces.
pub(crate) fn xml_attr(text: &str) -> String {
    xml(text).replace('\n', "&#10;").replace('\t', "&#9;")
}

fn allowed_in_xml(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Escapes text for Markdown (CommonMark / GitHub): inline syntax characters are
/// backslash-escaped, HTML is neutralised, and newlines become spaces so a value stays in its
/// table cell or list item.
pub(crate) fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => {}
            '\n' | '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Shortens text to at most `max` characters, ending it with "…" when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_quotes() {
        assert_eq!(
            xml(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(xml("ok µs — ü"), "ok µs — ü");
    }

    #[test]
    fn xml_replaces_characters_xml_cannot_carry() {
        assert_eq!(
            xml("a\u{0}b\u{1b}[31mc\u{FFFE}"),
            "a\u{FFFD}b\u{FFFD}[31mc\u{FFFD}"
        );
        assert_eq!(xml("a\tb\nc\rd"), "a\tb\nc&#13;d");
    }

    #[test]
    fn xml_attributes_keep_newlines() {
        assert_eq!(xml_attr("a\nb\t\"c\""), "a&#10;b&#9;&quot;c&quot;");
    }

    #[test]
    fn markdown_escapes_tables_links_and_html() {
        assert_eq!(
            markdown("a|b *c* [d](e) <img src=x> `f`\nnext"),
            r"a\|b \*c\* \[d\](e) &lt;img src=x&gt; \`f\` next"
        );
        assert_eq!(markdown(r"C:\path_x"), r"C:\\path\_x");
    }

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("µµµ", 3), "µµµ");
    }
}
