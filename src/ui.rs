//! Human output in cargo's style: right-aligned status verbs on stderr, warnings, colors only on
//! a terminal (and never with `NO_COLOR`), progress bars drawn from transfer events only on a
//! terminal and never in quiet or verbose mode.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// Names from an input longer than this (in characters) are cut in messages.
pub(crate) const MAX_QUOTED_NAME: usize = 256;
/// Messages longer than this (in bytes) are cut when printed: a crafted input must not turn one
/// error into gigabytes of output.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024;

/// `s` with control characters (C0, DEL and C1) escaped as `\n`, `\x1b`, `\u{9b}`, so that text
/// from an input cannot move the cursor, forge output lines or reprogram the terminal. Unicode's
/// bidirectional controls and line/paragraph separators are escaped too: they are not control
/// characters, but they reorder or break what the terminal shows (`evil\u{202e}kcap` reads
/// as `evilpack`).
pub(crate) fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text from a server or a file, fit for a one-line message: control characters escaped,
/// at most `max` characters (then `…`).
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters, and the format characters that change how a line is shown: bidi
/// embeddings, overrides, isolates and marks, and the Unicode line and paragraph separators.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// A name taken from an input, fit for a message: control characters escaped and, past
/// [`MAX_QUOTED_NAME`] characters, cut with the full length noted.
pub(crate) fn quote_name(name: &str) -> String {
    match name.char_indices().nth(MAX_QUOTED_NAME) {
        None => escape_controls(name).into_owned(),
        Some((cut, _)) => format!(
            "{}... ({} bytes in all)",
            escape_controls(&name[..cut]),
            name.len()
        ),
    }
}

/// A message as printed: control characters escaped, cut after 16 KiB (`MAX_MESSAGE`) bytes.
pub fn printable(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_MESSAGE {
        return escape_controls(message);
    }
    let mut cut = MAX_MESSAGE;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!(
        "{}... ({} bytes in all)",
        escape_controls(&message[..cut]),
        message.len()
    ))
}

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Status lines and warnings.
    Normal,
    /// Also details.
    Verbose,
}

/// Writes status lines and warnings to stderr, and draws progress bars for
/// [`crate::events::Event::Transfer`]s.
#[derive(Debug, Clone)]
pub struct Printer {
    verbosity: Verbosity,
    color: bool,
    /// Whether progress bars are drawn (normal verbosity, stderr a terminal).
    draw: bool,
    /// Warnings given by [`Printer::warn_once`] so far (shared by clones).
    warned: Arc<Mutex<HashSet<String>>>,
    /// The progress bars on screen (shared by clones).
    bars: Arc<Mutex<Bars>>,
}

/// Progress bars by transfer id, under one `MultiProgress` while any is shown.
#[derive(Debug, Default)]
struct Bars {
    multi: Option<indicatif::MultiProgress>,
    active: HashMap<String, indicatif::ProgressBar>,
}

impl Printer {
    /// A printer for stderr; colors when stderr is a terminal and `NO_COLOR` is unset.
    pub fn new(verbosity: Verbosity) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let color = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Printer {
            verbosity,
            color,
            draw: terminal && verbosity == Verbosity::Normal,
            warned: Arc::default(),
            bars: Arc::default(),
        }
    }

    /// A printer that says nothing (library use).
    pub fn silent() -> Self {
        Printer {
            verbosity: Verbosity::Quiet,
            color: false,
            draw: false,
            warned: Arc::default(),
            bars: Arc::default(),
        }
    }

    /// The verbosity.
    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// Whether progress bars may be drawn.
    pub fn progress(&self) -> bool {
        self.draw
    }

    /// `   Packaging foo v1.0` — a verb right-aligned to 12 columns.
    pub fn status(&self, verb: &str, message: impl AsRef<str>) {
        if self.verbosity >= Verbosity::Normal {
            self.line(verb, "32", message.as_ref());
        }
    }

    /// A status line shown only with `-v`.
    pub fn detail(&self, verb: &str, message: impl AsRef<str>) {
        if self.verbosity >= Verbosity::Verbose {
            self.line(verb, "36", message.as_ref());
        }
    }

    /// `warning: …` (shown unless quiet).
    pub fn warn(&self, message: impl AsRef<str>) {
        if self.verbosity >= Verbosity::Normal {
            self.prefixed("warning", "33", message.as_ref());
        }
    }

    /// Like [`Printer::warn`], but a message already given is not repeated (a buildpack read
    /// twice, as the main buildpack and as a dependency, warns once).
    pub fn warn_once(&self, message: impl AsRef<str>) {
        let message = message.as_ref();
        let first = self
            .warned
            .lock()
            .map(|mut seen| seen.insert(message.to_string()))
            .unwrap_or(true);
        if first {
            self.warn(message);
        }
    }

    /// `note: …` (shown unless quiet).
    pub fn note(&self, message: impl AsRef<str>) {
        if self.verbosity >= Verbosity::Normal {
            self.prefixed("note", "36", message.as_ref());
        }
    }

    /// `error: …` (always shown).
    pub fn error(&self, message: impl AsRef<str>) {
        self.prefixed("error", "31", message.as_ref());
    }

    /// One indented detail line under an error or warning (always shown), escaped on its own.
    pub fn error_detail(&self, message: impl AsRef<str>) {
        let message = printable(message.as_ref());
        self.write_line(format_args!("  {message}"));
    }

    fn line(&self, verb: &str, color: &str, message: &str) {
        let message = printable(message);
        if self.color {
            self.write_line(format_args!("\x1b[1;{color}m{verb:>12}\x1b[0m {message}"));
        } else {
            self.write_line(format_args!("{verb:>12} {message}"));
        }
    }

    fn prefixed(&self, prefix: &str, color: &str, message: &str) {
        let message = printable(message);
        if self.color {
            self.write_line(format_args!("\x1b[1;{color}m{prefix}\x1b[0m: {message}"));
        } else {
            self.write_line(format_args!("{prefix}: {message}"));
        }
    }

    /// One line on stderr, above the progress bars while any are drawn.
    fn write_line(&self, line: std::fmt::Arguments<'_>) {
        let write = || {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        };
        if !self.draw {
            return write();
        }
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match &bars.multi {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }

    /// Draw one transfer's progress: a bar appears with its first event, moves with each,
    /// and is cleared with its last; the bars go once none is left.
    fn transfer(&self, id: &str, label: &str, done: u64, total: Option<u64>, finished: bool) {
        if !self.draw {
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if finished {
            if let Some(bar) = bars.active.remove(id) {
                bar.finish_and_clear();
            }
            if bars.active.is_empty() {
                if let Some(multi) = bars.multi.take() {
                    let _ = multi.clear();
                }
            }
            return;
        }
        let bar = match bars.active.get(id) {
            Some(bar) => bar.clone(),
            None => {
                let multi = bars.multi.get_or_insert_with(indicatif::MultiProgress::new);
                let bar = multi.add(indicatif::ProgressBar::new(total.unwrap_or(0)));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(quote_name(label));
                bars.active.insert(id.to_string(), bar.clone());
                bar
            }
        };
        bar.set_position(done);
    }
}

impl crate::events::Events for Printer {
    /// Status and detail lines by verbosity; warnings once each; transfers as progress bars
    /// (only on a terminal, at normal verbosity).
    fn event(&self, event: &crate::events::Event<'_>) {
        use crate::events::Event;
        match *event {
            Event::Status { verb, message } => self.status(verb, message),
            Event::Detail { verb, message } => self.detail(verb, message),
            Event::Warning { message } => self.warn_once(message),
            Event::Note { message } => self.note(message),
            Event::Transfer {
                id,
                label,
                done,
                total,
                finished,
            } => self.transfer(id, label, done, total, finished),
        }
    }
}

/// `1.5 MiB`-style sizes for humans.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(10), "10 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn control_characters_are_escaped_and_names_cut() {
        assert_eq!(super::escape_controls("plain é"), "plain é");
        assert_eq!(
            super::escape_controls("a\x1b[2Jb\x07\nc\u{9b}d\x7f"),
            "a\\x1b[2Jb\\x07\\nc\\u{9b}d\\x7f"
        );
        let long = "n".repeat(1000);
        let q = super::quote_name(&long);
        assert!(
            q.starts_with(&"n".repeat(256)) && q.ends_with("... (1000 bytes in all)"),
            "{q}"
        );
        let huge = "m".repeat(super::MAX_MESSAGE * 3);
        assert!(super::printable(&huge).len() < super::MAX_MESSAGE + 64);
    }
}
