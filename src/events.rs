//! What an operation tells its caller while it works: one [`Events`] sink, the CLI's printer or a pipeline's logger.
//!
//! The library never writes to the terminal. Every operation (package, verify, push, and the
//! commands to come) takes an `&dyn Events` and reports through it: steps as [`Event::Status`]
//! (a verb and a subject, cargo's style), finer steps as [`Event::Detail`], warnings as
//! [`Event::Warning`] (the report lists them too, so a caller that ignores events loses
//! nothing), and byte counts of long transfers as [`Event::Transfer`] for progress bars.
//! Text in events may come from inputs: it is not escaped here, so a sink that prints must
//! escape it (the CLI's printer does).

/// A receiver of [`Event`]s. Called from the operation's threads, so it must be `Sync`; it
/// should return quickly (a slow sink slows the work down, it never loses events).
pub trait Events: Sync {
    /// One event. The borrowed text lives only for the call.
    fn event(&self, event: &Event<'_>);
}

/// One thing an operation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A step: `verb` is one capitalized word (`Packaging`, `Pushed`, `Retrying`), `message`
    /// what it concerns.
    Status {
        /// `Packaging`, `Writing`, `Pushed`, …
        verb: &'a str,
        /// What the step concerns: a buildpack, a file, a digest.
        message: &'a str,
    },
    /// A step worth showing only when asked for detail (the CLI's `-v`).
    Detail {
        /// As in [`Event::Status`].
        verb: &'a str,
        /// As in [`Event::Status`].
        message: &'a str,
    },
    /// Something the user should know that does not stop the operation; also in the report.
    Warning {
        /// One line, without a `warning:` prefix.
        message: &'a str,
    },
    /// A hint for the user (the CLI's `note:` line): not a problem, so not in the report.
    Note {
        /// One line, without a `note:` prefix.
        message: &'a str,
    },
    /// Progress of one transfer (a blob upload or download, a layer being compressed).
    Transfer {
        /// Stable for the transfer's life (a digest, say): several run at once.
        id: &'a str,
        /// What to call it in a progress bar.
        label: &'a str,
        /// Bytes done so far (it can go down when a failed attempt is retried).
        done: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
        /// Whether this is the last event for `id`.
        finished: bool,
    },
}

/// A sink that drops every event, for callers that only want the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl Events for NoEvents {
    fn event(&self, _: &Event<'_>) {}
}

impl<F: Fn(&Event<'_>) + Sync> Events for F {
    fn event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// Shorthands for the library's own reporting.
pub(crate) trait EventsExt {
    fn status(&self, verb: &str, message: &str);
    fn detail(&self, verb: &str, message: &str);
    fn warning(&self, message: &str);
    fn note(&self, message: &str);
}

impl<E: Events + ?Sized> EventsExt for E {
    fn status(&self, verb: &str, message: &str) {
        self.event(&Event::Status { verb, message });
    }
    fn detail(&self, verb: &str, message: &str) {
        self.event(&Event::Detail { verb, message });
    }
    fn warning(&self, message: &str) {
        self.event(&Event::Warning { message });
    }
    fn note(&self, message: &str) {
        self.event(&Event::Note { message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn closures_are_sinks_and_see_every_event() {
        let seen = Mutex::new(Vec::new());
        let sink = |e: &Event<'_>| seen.lock().unwrap().push(format!("{e:?}"));
        sink.status("Packaging", "a v1");
        sink.warning("w");
        (&sink as &dyn Events).detail("Reading", "b");
        NoEvents.status("x", "y");
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen[0].contains("Packaging") && seen[1].contains("Warning"));
    }
}
