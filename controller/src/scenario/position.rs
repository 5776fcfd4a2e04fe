//! Byte offsets (what toml's spans hold) turned into the 1-based line and column people read.

/// The 1-based `(line, column)` of byte `offset` in `text`; the column counts characters, not
/// bytes.
///
/// An offset past the end points just after the last character (where toml reports an unexpected
/// end of file); an offset inside a multi-byte character points at that character.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn first_character_is_line_one_column_one() {
        assert_eq!(line_column("name = 1", 0), (1, 1));
        assert_eq!(line_column("", 0), (1, 1));
    }

    #[test]
    fn counts_lines_and_columns_from_one() {
        let text = "a = 1\nbb = 2\n\nccc = 3";
        assert_eq!(line_column(text, text.find("bb").unwrap_or(0)), (2, 1));
        assert_eq!(line_column(text, text.find('2').unwrap_or(0)), (2, 6));
        assert_eq!(line_column(text, text.find("ccc").unwrap_or(0)), (4, 1));
        // The newline itself belongs to the line it ends.
        assert_eq!(line_column(text, 5), (1, 6));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "é" is two bytes, "→" three, "🦀" four: each is one column.
        let text = "name = \"é→🦀\" # x\nrto = \"1s\"";
        let hash = text.find('#').unwrap_or(0);
        // 8 ASCII bytes, then 2 + 3 + 4 bytes of text and 2 ASCII bytes before '#'.
        assert_eq!(hash, 19);
        assert_eq!(line_column(text, hash), (1, 14));
        let rto = text.find("rto").unwrap_or(0);
        assert_eq!(line_column(text, rto), (2, 1));
        let second_line = "é = \"x\"";
        let text = format!("a = 1\n{second_line}");
        let eq = text.rfind('=').unwrap_or(0);
        assert_eq!(line_column(&text, eq), (2, 3));
    }

    #[test]
    fn offsets_inside_a_character_or_past_the_end_are_clamped() {
        let text = "x = \"🦀\"";
        // Byte 6 is inside the crab (bytes 5..9): report the crab's column.
        assert_eq!(line_column(text, 6), (1, 6));
        assert_eq!(line_column(text, 100), (1, 8));
        assert_eq!(line_column("a = \n", 5), (2, 1));
    }

    #[test]
    fn carriage_returns_do_not_start_lines() {
        let text = "a = 1\r\nb = 2";
        assert_eq!(line_column(text, text.find('b').unwrap_or(0)), (2, 1));
    }
}
