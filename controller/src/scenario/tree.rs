//! Lookups in toml's spanned document tree: where a key sits, and which key holds a position.

use std::fmt::Write as _;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The byte span of `key` itself (not its value) in `table`.
pub(crate) fn key_span(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    table.get_key_value(key).map(|(k, _)| k.span())
}

/// The dotted path (`labels.role`, `agents[1]`) of the innermost value in `table` whose span
/// holds `span`; `None` when nothing does, or when `span` is a key (an error there names it).
pub(crate) fn path_to(table: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let mut path = Vec::new();
    match find_in_table(table, span, &mut path) {
        Found::Value => Some(render(&path)),
        Found::Key | Found::Nothing => None,
    }
}

/// The dotted path of the innermost value whose span holds `span` inside `value`, which `key`
/// holds (`labels.zone`, `agents[1]`); `key` alone when nothing inside does.
pub(crate) fn path_in_value(
    key: &str,
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
) -> String {
    let mut path = vec![Segment::Key(key)];
    match find(value.get_ref(), span, &mut path) {
        Found::Value => render(&path),
        Found::Key | Found::Nothing => key.to_string(),
    }
}

enum Found {
    Nothing,
    Key,
    Value,
}

enum Segment<'v> {
    Key(&'v str),
    Index(usize),
}

fn find_in_table<'v>(
    table: &'v DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Segment<'v>>,
) -> Found {
    if table.keys().any(|key| key.span() == *span) {
        return Found::Key;
    }
    let children = table
        .iter()
        .map(|(key, child)| (Segment::Key(key.get_ref().as_ref()), child));
    find_in(children, span, path)
}

fn find<'v>(value: &'v DeValue<'_>, span: &Range<usize>, path: &mut Vec<Segment<'v>>) -> Found {
    match value {
        DeValue::Table(table) => find_in_table(table, span, path),
        DeValue::Array(array) => {
            let children = array
                .iter()
                .enumerate()
                .map(|(i, child)| (Segment::Index(i), child));
            find_in(children, span, path)
        }
        _ => Found::Nothing,
    }
}

fn find_in<'v, 'i: 'v>(
    children: impl Iterator<Item = (Segment<'v>, &'v Spanned<DeValue<'i>>)>,
    span: &Range<usize>,
    path: &mut Vec<Segment<'v>>,
) -> Found {
    for (segment, child) in children {
        path.push(segment);
        // Children first, so the innermost value wins. Table headers (`[targets]`) span only the
        // header, so a parent's span says nothing about its children's: always look inside.
        match find(child.get_ref(), span, path) {
            Found::Nothing => {}
            found => return found,
        }
        let own = child.span();
        if own.start <= span.start && span.end <= own.end {
            return Found::Value;
        }
        path.pop();
    }
    Found::Nothing
}

fn render(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span_of(text: &str, needle: &str) -> Range<usize> {
        let start = text.find(needle).expect("needle in text");
        start..start + needle.len()
    }

    #[test]
    fn finds_the_innermost_key_holding_a_value() {
        let text = "a = 1\n[t]\nlist = [\"x\", 7]\nmap = { role = 2 }\n";
        let root = DeTable::parse(text).expect("valid toml").into_inner();
        assert_eq!(
            path_to(&root, &span_of(text, "7")).as_deref(),
            Some("t.list[1]")
        );
        assert_eq!(
            path_to(&root, &span_of(text, "2")).as_deref(),
            Some("t.map.role")
        );
        assert_eq!(path_to(&root, &span_of(text, "1")).as_deref(), Some("a"));
    }

    #[test]
    fn a_key_or_an_unknown_place_has_no_path() {
        let text = "a = 1\n[t]\nb = 2\n";
        let root = DeTable::parse(text).expect("valid toml").into_inner();
        assert_eq!(path_to(&root, &span_of(text, "b")), None);
        assert_eq!(path_to(&root, &(text.len()..text.len())), None);
        if let Some(DeValue::Table(t)) = root.get("t").map(Spanned::get_ref) {
            assert_eq!(key_span(t, "b"), Some(span_of(text, "b")));
            assert_eq!(key_span(t, "c"), None);
        } else {
            panic!("t is a table");
        }
    }
}
