//! Stopping an operation: a [`Cancel`] token the caller holds, checked at every read, write and walk step.
//!
//! Each operation's options carry a token. The operation makes it the current token of the
//! thread it runs on for its whole length, and its checks (every chunk written to an output,
//! every chunk read from an archive being extracted, every step of a directory walk) ask that
//! token. Once it is cancelled the operation returns [`Error::Interrupted`] and drops its
//! temporary files and scratch directories on the way out, so nothing is removed while another
//! thread still writes into it. Two operations running at once on different threads have
//! different tokens: cancelling one leaves the other alone.
//!
//! Signals are the binary's business: its handler calls [`crate::on_signal`] with the token it
//! gave the operation, which cancels it and tells the handler whether the process may exit at
//! once.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A cancellation token: clones share one state, so the caller keeps one clone and gives
/// another to the operation. Cancelling is permanent.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask every operation holding this token to stop at its next check. Safe to call from a
    /// signal-handling thread, any number of times.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Run `work` with this token as the current thread's token (the one the library's checks
    /// ask), restoring the previous one afterwards, also when `work` panics.
    pub(crate) fn scope<T>(&self, work: impl FnOnce() -> T) -> T {
        struct Restore(Option<Cancel>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let _restore = Restore(previous);
        work()
    }

    /// Run an operation in [`Cancel::scope`]: when this token was cancelled, whatever error
    /// the operation stopped with (a read cut short, a thread's failure) is reported as
    /// [`Error::Interrupted`](crate::error::Error::Interrupted).
    pub(crate) fn operation<T>(
        &self,
        work: impl FnOnce() -> crate::error::Result<T>,
    ) -> crate::error::Result<T> {
        self.scope(work).map_err(|e| {
            if self.is_cancelled() {
                crate::error::Error::Interrupted
            } else {
                e
            }
        })
    }
}

thread_local! {
    /// The token of the operation running on this thread, if one is.
    static CURRENT: RefCell<Option<Cancel>> = const { RefCell::new(None) };
}

/// The token of the operation running on this thread (a token never cancelled outside an
/// operation), for the threads an operation starts: each runs its work in
/// [`Cancel::scope`] of it.
pub(crate) fn current() -> Cancel {
    CURRENT.with(|c| c.borrow().clone()).unwrap_or_default()
}

/// Whether the operation running on this thread was cancelled (never, outside an operation).
pub(crate) fn cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(Cancel::is_cancelled))
}

/// `Err(Error::Interrupted)` once the operation running on this thread was cancelled.
pub(crate) fn check() -> Result<()> {
    if cancelled() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Wait `duration`, or less once the operation running on this thread is cancelled: then
/// `Err(Error::Interrupted)` (a retry's wait, up to what a server asked for, must not outlast
/// a cancellation).
pub(crate) fn sleep(duration: Duration) -> Result<()> {
    /// How long a cancellation may go unnoticed.
    const STEP: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + duration;
    loop {
        check()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(STEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_seen_only_inside_its_scope_and_only_on_its_thread() {
        let token = Cancel::new();
        assert!(!cancelled());
        token.scope(|| {
            assert!(!cancelled());
            token.cancel();
            assert!(cancelled());
            assert!(matches!(check(), Err(Error::Interrupted)));
            let other = std::thread::spawn(cancelled).join().unwrap();
            assert!(!other, "another thread runs another operation");
        });
        assert!(!cancelled(), "the scope ended");
        assert!(token.is_cancelled());
    }

    #[test]
    fn scopes_nest_and_restore() {
        let outer = Cancel::new();
        let inner = Cancel::new();
        outer.scope(|| {
            inner.scope(|| {
                inner.cancel();
                assert!(cancelled());
            });
            assert!(!cancelled(), "the outer token is current again");
        });
    }

    #[test]
    fn a_wait_ends_with_the_cancellation() {
        assert!(sleep(Duration::from_millis(1)).is_ok());
        let token = Cancel::new();
        let canceller = token.clone();
        let started = Instant::now();
        let waited = token.scope(|| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                canceller.cancel();
            });
            sleep(Duration::from_secs(30))
        });
        assert!(matches!(waited, Err(Error::Interrupted)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn clones_share_the_state() {
        let a = Cancel::new();
        let b = a.clone();
        b.cancel();
        assert!(a.is_cancelled());
    }
}
