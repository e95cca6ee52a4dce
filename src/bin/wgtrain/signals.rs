//! SIGINT, SIGTERM and SIGHUP stop a run between steps instead of killing it mid-write: the
//! first one sets a flag the training loop polls; a second one ends the process at once
//! (exit 128 + signal), for a user who will not wait.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers; without them (an error installing) signals keep their defaults.
pub fn install() {
    let received = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // The conditional shutdown first: it fires only when `asked` is already set.
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal,
            128 + signal,
            Arc::clone(&asked),
        );
        let _ = signal_hook::flag::register(signal, Arc::clone(&asked));
        let _ = signal_hook::flag::register_usize(signal, Arc::clone(&received), signal as usize);
    }
    let _ = RECEIVED.set(received);
}

/// The signal that asked the run to stop, if one did.
pub fn received() -> Option<i32> {
    RECEIVED
        .get()
        .map(|r| r.load(Ordering::SeqCst))
        .filter(|&s| s != 0)
        .map(|s| s as i32)
}
