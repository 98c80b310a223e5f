//! What packaging reports: the outputs written and the warnings given (each once).

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use crate::digest::Digest;
use crate::events::{Event, Events};
use crate::image::ImageReport;

/// What was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PackageReport {
    /// The buildpack `id@version`.
    pub buildpack: String,
    /// One entry per written file or directory.
    pub outputs: Vec<OutputReport>,
    /// The warnings given while packaging, each once, in order.
    pub warnings: Vec<String>,
}

/// A sink that passes each warning on only the first time (a buildpack read twice, as the main
/// buildpack and as a dependency, warns once) and keeps them for the report.
pub(crate) struct WarningsOnce<'a> {
    sink: &'a dyn Events,
    seen: Mutex<Vec<String>>,
}

impl<'a> WarningsOnce<'a> {
    pub(crate) fn new(sink: &'a dyn Events) -> Self {
        WarningsOnce {
            sink,
            seen: Default::default(),
        }
    }

    pub(crate) fn into_warnings(self) -> Vec<String> {
        self.seen.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl Events for WarningsOnce<'_> {
    fn event(&self, event: &Event<'_>) {
        if let Event::Warning { message } = event {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.iter().any(|w| w == message) {
                return;
            }
            seen.push(message.to_string());
        }
        self.sink.event(event)
    }
}

/// One written package.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OutputReport {
    /// Where it was written.
    #[serde(serialize_with = "crate::json::lossy_path")]
    pub path: PathBuf,
    /// The digest `index.json` points at (the image index or the single manifest).
    pub digest: Digest,
    /// Media type of that digest.
    pub media_type: String,
    /// Total size of the stored blobs.
    pub blob_bytes: u64,
    /// Number of stored blobs.
    pub blobs: usize,
    /// The images, one per target.
    pub images: Vec<ImageReport>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventsExt;

    /// Each warning reaches the sink once, and the report lists each once, in order; other
    /// events pass through every time.
    #[test]
    fn warnings_are_passed_on_and_kept_once_each() {
        let seen = Mutex::new(Vec::new());
        let sink = |e: &Event<'_>| seen.lock().unwrap().push(format!("{e:?}"));
        let once = WarningsOnce::new(&sink);
        for message in ["b", "a", "b", "c", "a"] {
            once.warning(message);
            once.status("Built", "x");
        }
        assert_eq!(once.into_warnings(), ["b", "a", "c"]);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.iter().filter(|e| e.contains("Warning")).count(), 3);
        assert_eq!(seen.iter().filter(|e| e.contains("Status")).count(), 5);
    }
}
