//! Column alignment as docker prints it, and `--format json` output.
//!
//! Docker lays out its tables (and `docker version`) with Go's `text/tabwriter`:
//! cells end in a tab, and each column is as wide as its widest cell plus
//! padding. [`TabWriter`] reproduces that algorithm, including its "column
//! blocks": a column only spans consecutive lines that have a cell in it, so a
//! line without tabs (a section title) restarts the alignment below it.

use serde::Serialize;

/// How a list command prints its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Docker's aligned table with a header row.
    #[default]
    Table,
    /// One JSON object per line.
    Json,
}

/// Aligns lines of cells like Go's `tabwriter` padding with spaces.
#[derive(Debug)]
pub struct TabWriter {
    min_width: usize,
    padding: usize,
    lines: Vec<Vec<String>>,
}

impl TabWriter {
    /// The settings of docker's table formatter: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
    pub fn table() -> Self {
        Self::new(10, 3)
    }

    /// A writer whose columns are at least `min_width` wide (padding included)
    /// and `padding` wider than their widest cell.
    pub fn new(min_width: usize, padding: usize) -> Self {
        Self {
            min_width,
            padding,
            lines: Vec::new(),
        }
    }

    /// Adds a line. Every cell but the last is tab-terminated and so aligned in
    /// a column; the last one is the text before the newline, which no column
    /// pads (so tables have no trailing spaces).
    pub fn line<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.lines.push(cells.into_iter().map(Into::into).collect());
    }

    /// The aligned text, every line ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.format(&mut out, &mut Vec::new(), &self.lines);
        out
    }

    /// Go's `Writer.format`: finds each block of lines that have a cell in the
    /// next column, sizes that column over the block, and recurses into it.
    fn format(&self, out: &mut String, widths: &mut Vec<usize>, lines: &[Vec<String>]) {
        let column = widths.len();
        let has_column = |line: &Vec<String>| column + 1 < line.len();
        let mut done = 0;
        while let Some(offset) = lines[done..].iter().position(has_column) {
            let start = done + offset;
            write_lines(out, widths, &lines[done..start]);
            let end = start + lines[start..].iter().take_while(|l| has_column(l)).count();
            let block = &lines[start..end];
            let widest = block.iter().map(|l| cell_width(&l[column])).max();
            widths.push((widest.unwrap_or(0) + self.padding).max(self.min_width));
            self.format(out, widths, block);
            widths.pop();
            done = end;
        }
        write_lines(out, widths, &lines[done..]);
    }
}

/// Writes lines whose columns are all sized: each cell padded to its column's width.
fn write_lines(out: &mut String, widths: &[usize], lines: &[Vec<String>]) {
    for line in lines {
        for (cell, column) in line.iter().zip(0..) {
            out.push_str(cell);
            if let Some(width) = widths.get(column) {
                out.extend(std::iter::repeat_n(' ', width - cell_width(cell)));
            }
        }
        out.push('\n');
    }
}

/// A cell's width in characters (docker counts East Asian wide runes as two; shoal's
/// IDs, hostnames and states are ASCII, so one per character is exact for them).
fn cell_width(cell: &str) -> usize {
    cell.chars().count()
}

/// Each item as one compact JSON object per line, as docker's `--format json` prints lists.
pub fn json_lines<T: Serialize>(items: &[T]) -> serde_json::Result<String> {
    let mut out = String::new();
    for item in items {
        out.push_str(&serde_json::to_string(item)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_to_widest_cell_plus_three_and_leaves_last_column_unpadded() {
        let mut table = TabWriter::table();
        table.line(["NAME", "DRIVER", "SCOPE"]);
        table.line(["ingress-network-long", "overlay", "swarm"]);
        table.line(["b", "", "local"]);
        assert_eq!(
            table.render(),
            "NAME                   DRIVER    SCOPE\n\
             ingress-network-long   overlay   swarm\n\
             b                                local\n"
        );
    }

    #[test]
    fn lines_without_tabs_split_columns_into_separately_sized_blocks() {
        let mut writer = TabWriter::new(4, 1);
        writer.line(["Client:"]);
        writer.line([" Version:", "1"]);
        writer.line(["Server:"]);
        writer.line(["  A:", "2"]);
        writer.line(["  Longer key:", "3"]);
        assert_eq!(
            writer.render(),
            "Client:\n Version: 1\nServer:\n  A:          2\n  Longer key: 3\n"
        );
    }

    #[test]
    fn json_lines_prints_one_object_per_line() {
        #[derive(Serialize)]
        struct Row {
            #[serde(rename = "ID")]
            id: &'static str,
        }
        let rows = [Row { id: "a" }, Row { id: "b" }];
        assert_eq!(
            json_lines(&rows).unwrap(),
            "{\"ID\":\"a\"}\n{\"ID\":\"b\"}\n"
        );
    }
}
