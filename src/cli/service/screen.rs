//! Where progress is drawn, as docker's `jsonmessage` display draws it: on a terminal,
//! lines redrawn in place (with a bar for task states when the terminal is wide enough);
//! elsewhere, a line printed each time one changes.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};

/// Docker draws bars only on terminals wider than 110 columns, where they fit the line.
const BAR_MIN_WIDTH: usize = 111;
/// Docker's assumed width when a terminal does not tell its own.
const FALLBACK_WIDTH: usize = 200;

/// A display of progress lines, each known by an ID (`overall progress`, `1/3`, `verify`).
pub struct Screen<W: Write> {
    out: W,
    /// The terminal's width, or `None` when not drawing on a terminal.
    width: Option<usize>,
    /// On a terminal, the IDs of the lines being redrawn, top to bottom.
    lines: Vec<String>,
    /// Off a terminal, the text last printed for each ID.
    printed: HashMap<String, String>,
}

impl<W: Write> Screen<W> {
    /// A screen drawing on `out`: a terminal `width` columns wide, or not a terminal.
    pub fn new(out: W, width: Option<usize>) -> Self {
        Self {
            out,
            width,
            lines: Vec::new(),
            printed: HashMap::new(),
        }
    }

    /// Shows `id: text`, with a bar `rank` ninths full for a task state. On a terminal the
    /// line is redrawn where it was first drawn (the cursor stays below the last line);
    /// elsewhere it is printed, without the bar, when its text changed.
    pub fn progress(&mut self, id: &str, text: &str, rank: Option<u8>) -> io::Result<()> {
        let Some(width) = self.width else {
            let text = text.trim_end();
            if text.is_empty() || self.printed.get(id).is_some_and(|shown| shown == text) {
                return Ok(());
            }
            writeln!(self.out, "{id}: {text}")?;
            self.printed.insert(id.to_string(), text.to_string());
            return self.out.flush();
        };
        let index = match self.lines.iter().position(|line| line == id) {
            Some(index) => index,
            None => {
                self.lines.push(id.to_string());
                self.out.write_all(b"\n")?;
                self.lines.len() - 1
            }
        };
        let up = self.lines.len() - index;
        let bar = rank
            .filter(|_| width >= BAR_MIN_WIDTH)
            .map(bar)
            .unwrap_or_default();
        write!(
            self.out,
            "\x1b[{up}A\x1b[2K\r{id}: {text} {bar}\r\x1b[{up}B"
        )?;
        self.out.flush()
    }

    /// Prints `id: text` (or `text` alone, without an ID) on a line of its own, which is
    /// never redrawn; lines drawn before it are not redrawn either.
    pub fn message(&mut self, id: &str, text: &str) -> io::Result<()> {
        self.lines.clear();
        if id.is_empty() {
            writeln!(self.out, "{text}")?;
        } else {
            writeln!(self.out, "{id}: {text}")?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
impl Screen<Vec<u8>> {
    /// What was drawn since the last look.
    pub fn drawn(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.out)).expect("progress is text")
    }
}

/// Docker's bar for a task `rank` ninths of the way to running.
fn bar(rank: u8) -> String {
    let filled = (usize::from(rank) * 100 / 9 / 2).min(50);
    format!("[{}>{}] ", "=".repeat(filled), " ".repeat(50 - filled))
}

/// The width of the terminal on stdout, or `None` when stdout is not a terminal.
pub fn terminal_width() -> Option<usize> {
    if !io::stdout().is_terminal() {
        return None;
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` to the pointer, which is valid for the call.
    let status = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &raw mut size) };
    let columns = usize::from(size.ws_col);
    Some(if status == 0 && columns > 0 {
        columns
    } else {
        FALLBACK_WIDTH
    })
}

#[cfg(test)]
#[path = "screen_tests.rs"]
mod tests;
