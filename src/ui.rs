//! Human output in cargo's style: right-aligned status verbs on stderr, warnings, colors only on
//! a terminal (and never with `NO_COLOR`), progress suppressed in quiet mode.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

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

/// Writes status lines and warnings to stderr.
#[derive(Debug, Clone)]
pub struct Printer {
    verbosity: Verbosity,
    color: bool,
    /// Warnings given by [`Printer::warn_once`] so far (shared by clones).
    warned: Arc<Mutex<HashSet<String>>>,
}

impl Printer {
    /// A printer for stderr; colors when stderr is a terminal and `NO_COLOR` is unset.
    pub fn new(verbosity: Verbosity) -> Self {
        let color = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Printer {
            verbosity,
            color,
            warned: Arc::default(),
        }
    }

    /// A printer that says nothing (library use).
    pub fn silent() -> Self {
        Printer {
            verbosity: Verbosity::Quiet,
            color: false,
            warned: Arc::default(),
        }
    }

    /// The verbosity.
    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// Whether progress bars may be drawn.
    pub fn progress(&self) -> bool {
        self.verbosity == Verbosity::Normal && std::io::stderr().is_terminal()
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

    fn line(&self, verb: &str, color: &str, message: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.color {
            writeln!(err, "\x1b[1;{color}m{verb:>12}\x1b[0m {message}")
        } else {
            writeln!(err, "{verb:>12} {message}")
        };
    }

    fn prefixed(&self, prefix: &str, color: &str, message: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.color {
            writeln!(err, "\x1b[1;{color}m{prefix}\x1b[0m: {message}")
        } else {
            writeln!(err, "{prefix}: {message}")
        };
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
}
