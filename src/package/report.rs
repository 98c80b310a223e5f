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
    /// Every `[[dependencies]]` entry, in package.toml's order: where it came from and which
    /// image each target took from it (what a release pins).
    pub dependencies: Vec<DependencyReport>,
    /// The warnings given while packaging, each once, in order.
    pub warnings: Vec<String>,
}

/// One dependency of the package.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DependencyReport {
    /// The URI as package.toml gives it (`docker://REF` for an `image` key).
    pub uri: String,
    /// What it is.
    pub kind: DependencyKind,
    /// For an image of the store: the reference, normalized (`docker.io/library/x:1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// For an image of the store: the ref name of the store entry it was found under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// For an image of the store: the store it was read from.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "lossy_optional_path"
    )]
    pub store: Option<PathBuf>,
    /// For an image of the store: the digest of what the reference names (an index or a
    /// manifest): `REFERENCE@DIGEST` pins it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// For a package or an image: the manifest each target took from it (none for a target
    /// another package of the same buildpack served).
    pub images: Vec<DependencyImage>,
}

/// What a dependency is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum DependencyKind {
    /// A buildpack directory or `.tgz`/`.tar` archive.
    Buildpack,
    /// A `.cnb` file or an OCI layout directory.
    Package,
    /// An image of the store (`docker://REF`, a bare reference, `image = "REF"`).
    Image,
}

/// The image one target took from a dependency.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DependencyImage {
    /// The target, as the output's images name it.
    pub target: String,
    /// The manifest's digest.
    pub manifest: Digest,
}

fn lossy_optional_path<S: serde::Serializer>(
    path: &Option<PathBuf>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match path {
        Some(p) => crate::json::lossy_path(p, s),
        None => s.serialize_none(),
    }
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
