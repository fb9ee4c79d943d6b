//! Stopping a run cleanly: a process-wide flag that a signal handler (the binary's: SIGINT,
//! SIGTERM, SIGHUP) sets and that every long loop checks.
//!
//! The checks sit where a stop costs nothing to undo: the write-behind writer before it hands a
//! buffer (8 MiB) to its thread, every view of a weight (per tensor, per expert), every MiB
//! hashed, and the pipeline between steps. A check that finds the flag set returns
//! [`ConvertError::Interrupted`]; the error unwinds like any other, so the staged outputs
//! ([`crate::atomic::Staged`]) remove their temporaries on the way out, and what was finished
//! (a pipeline's earlier variants) stays. This crate installs no handler: that is the binary's
//! choice (see `docs/decisions.md`).

use crate::error::{ConvertError, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every running operation to stop at its next check.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// True once a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// [`ConvertError::Interrupted`] about `path` once a stop was asked for.
pub fn check(path: &Path) -> Result<()> {
    if requested() {
        return Err(ConvertError::Interrupted {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// `err`, or [`ConvertError::Interrupted`] about `path` when a stop was asked for: whatever
/// failed after the request (a writer whose buffer was refused, a view) failed because of it.
pub fn or_interrupted(err: ConvertError, path: &Path) -> ConvertError {
    if requested() && !matches!(err, ConvertError::Interrupted { .. }) {
        ConvertError::Interrupted {
            path: path.to_path_buf(),
        }
    } else {
        err
    }
}
