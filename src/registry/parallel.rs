//! Blob transfers in parallel, for push and pull alike: `jobs` threads of the operation (they
//! see its cancellation), the first failure stopping the others before their next blob.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::Result;
use crate::oci::Descriptor;

/// Parallel blob transfers when an operation's `jobs` is 0: transfers wait on the network, not
/// on the CPU, so this is more than the core count but stays polite to registries.
pub const DEFAULT_JOBS: usize = 4;
/// The most parallel transfers accepted.
pub const MAX_JOBS: usize = 32;

/// Run `transfer` on every blob, `jobs` at a time ([`DEFAULT_JOBS`] when 0, at most
/// [`MAX_JOBS`]); the first error is returned once every thread has stopped.
pub(super) fn for_each_blob(
    blobs: &[Descriptor],
    jobs: usize,
    transfer: impl Fn(&Descriptor) -> Result<()> + Sync,
) -> Result<()> {
    let jobs = match jobs {
        0 => DEFAULT_JOBS,
        n => n,
    }
    .clamp(1, MAX_JOBS)
    .min(blobs.len().max(1));
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    // The transfer threads belong to this operation: they see its cancellation.
    let token = crate::cancel::current();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                token.scope(|| {
                    while !abort.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(desc) = blobs.get(i) else { break };
                        if let Err(e) = transfer(desc) {
                            abort.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                        }
                    }
                })
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
