//! Plain-text tables for the listing commands (`agents`, `runs`, `schedules`): every column
//! as wide as its widest cell, whatever the cells hold, two spaces between columns.

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table with a header row.
pub struct Table {
    head: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(head: &[(&'static str, Align)]) -> Table {
        Table {
            head: head.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.head.len(), String::new());
        // A control character in a cell (a newline in a label, an escape sequence) would
        // break the lines apart or move the cursor: show it escaped. Only those characters:
        // quotes and backslashes are shown as they are.
        for cell in &mut cells {
            if cell.chars().any(char::is_control) {
                *cell = cell
                    .chars()
                    .map(|c| {
                        if c.is_control() {
                            c.escape_debug().to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
            }
        }
        self.rows.push(cells);
    }

    /// The table, one line per row, trailing spaces trimmed.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.head.iter().map(|(h, _)| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let head: Vec<String> = self.head.iter().map(|(h, _)| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&head).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(&self.head)
                .map(|((cell, &w), (_, align))| match align {
                    Align::Left => format!("{cell:<w$}"),
                    Align::Right => format!("{cell:>w$}"),
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&[
            ("NAME", Align::Left),
            ("N", Align::Right),
            ("X", Align::Left),
        ]);
        t.row(vec![
            "a-very-long-agent-name-indeed".into(),
            "7".into(),
            "x".into(),
        ]);
        t.row(vec!["b".into(), "1234".into(), "yy".into()]);
        t.row(vec!["tab\there".into(), "0".into()]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "NAME                              N  X");
        assert_eq!(lines[1], "a-very-long-agent-name-indeed     7  x");
        assert_eq!(lines[2], "b                              1234  yy");
        assert_eq!(lines[3], "tab\\there                         0");
    }

    #[test]
    fn only_control_characters_are_escaped() {
        let mut t = Table::new(&[("LABELS", Align::Left)]);
        t.row(vec!["team=sre \"blue\" \\ tab\there".into()]);
        assert_eq!(
            t.render().lines().nth(1),
            Some("team=sre \"blue\" \\ tab\\there")
        );
    }
}
