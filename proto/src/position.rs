//! Byte offsets (what toml's spans hold) turned into the 1-based line and column people read.
//!
//! A file with many errors asks for many positions, so the text is indexed once ([`LineIndex`])
//! and every lookup is a binary search plus a short count, never a rescan from the start.

/// The 1-based `(line, column)` of byte `offset` in `text`, for a single lookup (index the text
/// with [`LineIndex`] for many).
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_column(offset)
}

/// Bytes between two character-count checkpoints: a column lookup counts at most this many
/// bytes twice, however long the line is (a scenario may be one 2 MB line).
const CHECKPOINT: usize = 256;

/// Where every line starts, and how many characters precede every [`CHECKPOINT`]th byte.
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of each line; the first is 0.
    line_starts: Vec<usize>,
    /// `chars_before[i]`: characters in `text[..i * CHECKPOINT]`.
    chars_before: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text` in one pass.
    pub fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let line_starts = std::iter::once(0)
            .chain(newlines(bytes).map(|nl| nl + 1))
            .collect();
        let mut chars_before = Vec::with_capacity(bytes.len() / CHECKPOINT + 1);
        let mut chars = 0;
        for chunk in bytes.chunks(CHECKPOINT) {
            chars_before.push(chars);
            chars += count_chars(chunk);
        }
        chars_before.push(chars);
        Self {
            text,
            line_starts,
            chars_before,
        }
    }

    /// The 1-based `(line, column)` of byte `offset`; the column counts characters, not bytes.
    ///
    /// An offset past the end points just after the last character (where toml reports an
    /// unexpected end of file); an offset inside a multi-byte character points at that
    /// character.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = self.clamp(offset);
        let line = self.line_of(offset);
        let start = self.line_starts[line];
        let column = self.chars_upto(offset) - self.chars_upto(start) + 1;
        (line + 1, column)
    }

    /// The 1-based line of byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.line_of(self.clamp(offset)) + 1
    }

    /// `offset` moved into the text and back to the start of the character it falls in.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The 0-based line holding byte `offset`: the last line starting at or before it.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset) - 1
    }

    /// Characters in `text[..offset]`, `offset` being a character boundary.
    fn chars_upto(&self, offset: usize) -> usize {
        let mark = offset / CHECKPOINT;
        self.chars_before[mark] + count_chars(&self.text.as_bytes()[mark * CHECKPOINT..offset])
    }
}

/// Positions of the `\n` bytes (a `\r` before one belongs to the line it ends).
fn newlines(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
}

/// Characters in a run of UTF-8 bytes: every byte that does not continue a character starts one.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    fn line_column(text: &str, offset: usize) -> (usize, usize) {
        LineIndex::new(text).line_column(offset)
    }

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
        assert_eq!(LineIndex::new(text).line(text.len()), 4);
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

    #[test]
    fn long_lines_with_multi_byte_text_count_across_checkpoints() {
        // Lines far longer than a checkpoint, mixing widths, checked against a plain count.
        let line: String = "aé→🦀".repeat(300);
        let text = format!("{line}\n{line}\n{line}");
        let index = LineIndex::new(&text);
        for (offset, _) in text.char_indices().step_by(37) {
            let before = &text[..offset];
            let start = before.rfind('\n').map_or(0, |nl| nl + 1);
            let expected = (
                before.matches('\n').count() + 1,
                before[start..].chars().count() + 1,
            );
            assert_eq!(index.line_column(offset), expected, "offset {offset}");
        }
    }
}
