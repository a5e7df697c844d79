//! [`Table`]: rows printed in aligned columns, what `orderq admin` shows without `--json`.

use serde_json::Value;

/// A table with a header row; columns are as wide as their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    /// Column titles.
    header: Vec<String>,
    /// The rows, each as wide as `header`.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text: two spaces between columns, no trailing spaces, one line per row.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A JSON value as one table cell: strings bare, `null` as `-`, anything else as compact JSON
/// cut to `max` characters (with `…`).
pub fn cell(value: &Value, max: usize) -> String {
    let text = match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > max {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut table = Table::new(&["ID", "NAME"]);
        table.row(vec!["1".into(), "points".into()]);
        table.row(vec!["200".into()]);
        assert_eq!(table.render(), "ID   NAME\n1    points\n200\n");
    }

    #[test]
    fn cells_are_bare_and_bounded() {
        assert_eq!(cell(&json!(null), 10), "-");
        assert_eq!(cell(&json!("a b"), 10), "a b");
        assert_eq!(cell(&json!({"text": "long text"}), 8), "{\"text\"…");
    }
}
