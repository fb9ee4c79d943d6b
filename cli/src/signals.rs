//! Ctrl-C, SIGTERM and SIGHUP.
//!
//! A thread of its own receives the signals (signal-hook's iterator: the handler itself only
//! writes to a pipe, so nothing here runs in signal context). What it does depends on the
//! command:
//! - a command that writes outputs (`convert`, `pipeline`, `merge`, `synth`, `demo`, `check`)
//!   declares itself with [`stops_cleanly`]: the first signal asks the run to stop
//!   (`convert::cancel`), the writers notice within one buffer or tensor, the error unwinds,
//!   the staged temporaries are removed, and `main` prints [`interrupted_message`] and exits
//!   with 128 + the signal (130 for Ctrl-C);
//! - any other command (reading only) exits at once with the same code and a one-line message;
//! - a second signal while a clean stop is under way exits at once;
//! - a signal that comes once the outputs are complete leaves them: [`late_note`] says so;
//! - SIGXFSZ (a file-size limit, `ulimit -f`) is caught, so the write that crosses the limit
//!   fails with `EFBIG` and is reported like a full disk, the partial output removed, instead of
//!   killing the process.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static CLEAN: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
type Say = Box<dyn Fn() -> String + Send>;
static WHAT: Mutex<Option<Say>> = Mutex::new(None);

fn name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "Ctrl-C",
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Installs the handler thread. Failing to install it leaves the default behaviour (the
/// process dies; the next run removes its temporaries).
pub fn install() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGXFSZ])
    else {
        return;
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGXFSZ {
                // The write that crossed the limit returns EFBIG; the writer reports it.
                continue;
            }
            if convert::cancel::requested() {
                eprintln!(
                    "\n{} again: stopping now; a temporary `.NAME.partial-PID` may remain (the next run removes it)",
                    name(sig)
                );
                std::process::exit(128 + sig);
            }
            SIGNAL.store(sig, Ordering::SeqCst);
            convert::cancel::request();
            if !CLEAN.load(Ordering::SeqCst) {
                eprintln!("\ninterrupted ({})", name(sig));
                std::process::exit(128 + sig);
            }
            eprintln!(
                "\n{}: stopping after the current buffer and removing the partial output (again to stop at once)",
                name(sig)
            );
        }
    });
}

/// Declares that the command stops cleanly on a signal, and what to tell the user when it
/// did (`the partial output of X was removed; nothing was written`).
pub fn stops_cleanly(what: impl Into<String>) {
    let what = what.into();
    stops_cleanly_saying(move || what.clone());
}

/// [`stops_cleanly`] with the message made when the stop came (what was finished by then).
pub fn stops_cleanly_saying(what: impl Fn() -> String + Send + 'static) {
    *WHAT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(what));
    CLEAN.store(true, Ordering::SeqCst);
}

/// The exit code and message after a run stopped by a signal; `None` when no signal came.
pub fn interrupted_message() -> Option<(u8, String)> {
    if !convert::cancel::requested() {
        return None;
    }
    let sig = SIGNAL.load(Ordering::SeqCst);
    let what = WHAT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or_else(String::new, |say| say());
    let code = u8::try_from(128 + sig).unwrap_or(130);
    Some((code, format!("interrupted ({}): {what}", name(sig))))
}

/// After a command that completed: the note for a signal that came too late to stop it (its
/// outputs are complete and kept); `None` when no signal came.
pub fn late_note() -> Option<String> {
    if !convert::cancel::requested() {
        return None;
    }
    let sig = SIGNAL.load(Ordering::SeqCst);
    Some(format!(
        "{} came after the work was complete: nothing was removed, the outputs above are whole",
        name(sig)
    ))
}
