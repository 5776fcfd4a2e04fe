//! Reading a table key by key, so that every problem in it is reported.
//!
//! serde reads a struct until its first error, so one unknown key would hide a bad value two
//! lines down. Here each known key is deserialized on its own (keeping serde's messages, which
//! name the type expected), and every key that was not asked for is reported as unknown, with
//! the keys that were.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, ValueDeserializer};
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::tree;

/// One key of a table as read: absent, present but reported as wrong, or present and of the
/// right type.
#[derive(Debug)]
pub(crate) enum Field<T> {
    /// Not in the table: the default applies, or it is reported as missing.
    Absent,
    /// In the table, of the wrong type; already reported, so neither missing nor defaulted.
    Invalid,
    /// In the table, with its place in the file.
    Given(Spanned<T>),
}

impl<T> Field<T> {
    /// The value, when it was given and of the right type.
    pub(crate) fn given(&self) -> Option<&Spanned<T>> {
        match self {
            Field::Given(value) => Some(value),
            Field::Absent | Field::Invalid => None,
        }
    }

    /// Whether the key is absent from the table.
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value's span when given, else `fallback`.
    pub(crate) fn span_or(&self, fallback: Range<usize>) -> Range<usize> {
        self.given().map_or(fallback, Spanned::span)
    }
}

/// A table being read: the keys asked for so far, in order, are the ones it may hold.
pub(crate) struct Fields<'t, 'i> {
    table: &'t DeTable<'i>,
    known: Vec<&'static str>,
}

impl<'t, 'i> Fields<'t, 'i> {
    /// Starts reading `table`.
    pub(crate) fn new(table: &'t DeTable<'i>) -> Self {
        Self {
            table,
            known: Vec::new(),
        }
    }

    /// Reads `key` as a `T`, reporting a value of the wrong type at that value, prefixed with
    /// the key path (`labels.zone`).
    pub(crate) fn take<T: DeserializeOwned>(
        &mut self,
        diagnostics: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Field<T> {
        self.known.push(key);
        let Some(value) = self.table.get(key) else {
            return Field::Absent;
        };
        match Spanned::<T>::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(read) => Field::Given(read),
            Err(e) => {
                let span = e.span().unwrap_or(value.span());
                let path = tree::path_in_value(key, value, &span);
                let message = format!(
                    "{}: {}",
                    echo::ticked(&path),
                    echo::shorten_quotes(e.message())
                );
                diagnostics.error(span, message);
                Field::Invalid
            }
        }
    }

    /// Marks `key` as known without reading it: it is read elsewhere (`[targets]` is read on
    /// its own, not as a top-level value).
    pub(crate) fn skip(&mut self, key: &'static str) {
        self.known.push(key);
    }

    /// Reports every key of the table that was neither taken nor skipped, at the key, with the
    /// keys the table takes.
    pub(crate) fn reject_unknown(self, diagnostics: &mut Diagnostics<'_>) {
        let expected = expected(&self.known);
        for key in self.table.keys() {
            let name: &str = key.get_ref();
            if !self.known.contains(&name) {
                diagnostics.error(
                    key.span(),
                    format!("unknown field {}, {expected}", echo::ticked(name)),
                );
            }
        }
    }
}

/// serde's wording, which the rest of the file's messages (fault tables) also use.
fn expected(known: &[&str]) -> String {
    let ticked: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    match ticked.as_slice() {
        [] => "there are no fields".to_string(),
        [one] => format!("expected {one}"),
        [first, second] => format!("expected {first} or {second}"),
        all => format!("expected one of {}", all.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_expected_keys_as_serde_does() {
        assert_eq!(expected(&["a"]), "expected `a`");
        assert_eq!(expected(&["a", "b"]), "expected `a` or `b`");
        assert_eq!(expected(&["a", "b", "c"]), "expected one of `a`, `b`, `c`");
    }

    #[test]
    fn reads_every_key_and_reports_each_problem() {
        let text = "n = 1\ns = 2\nextra = true\nlist = [\"a\", 3]\nother = 0\n";
        let root = DeTable::parse(text).expect("valid toml").into_inner();
        let mut diagnostics = Diagnostics::new("t.toml", text);
        let mut fields = Fields::new(&root);
        let n: Field<i64> = fields.take(&mut diagnostics, "n");
        let s: Field<String> = fields.take(&mut diagnostics, "s");
        let list: Field<Vec<Spanned<String>>> = fields.take(&mut diagnostics, "list");
        let missing: Field<String> = fields.take(&mut diagnostics, "missing");
        fields.reject_unknown(&mut diagnostics);
        assert_eq!(n.given().map(|n| *n.get_ref()), Some(1));
        assert!(matches!(s, Field::Invalid));
        assert!(matches!(list, Field::Invalid));
        assert!(missing.is_absent());
        let errors = diagnostics.into_errors();
        let shown: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "t.toml:2:5: `s`: invalid type: integer `2`, expected a string",
                "t.toml:3:1: unknown field `extra`, expected one of `n`, `s`, `list`, `missing`",
                "t.toml:4:14: `list[1]`: invalid type: integer `3`, expected a string",
                "t.toml:5:1: unknown field `other`, expected one of `n`, `s`, `list`, `missing`",
            ]
        );
    }
}
