//! Why a session must end (closed by the gateway, or the gateway shutting down), as a
//! future the relay can poll on every wake-up for the price of an atomic load.
//!
//! The relay's `select!` polls its "session closed" and "shutting down" branches each
//! time the task wakes, which is twice per statement. Polling `watch` futures there
//! locked their waiter lists every time. Here one watcher task per session waits on
//! both and sets a flag; the relay's poll reads the flag and registers its waker in an
//! [`AtomicWaker`] (no lock).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use gatehouse_core::engine::Session;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    set: AtomicBool,
    reason: Mutex<String>,
    waker: AtomicWaker,
}

/// The end signal of one session; the watcher task stops when this is dropped.
pub(super) struct Ended {
    shared: Arc<Shared>,
    watcher: JoinHandle<()>,
}

impl Ended {
    /// Starts watching `session` and `shutdown` (`true`, or the sender gone, means the
    /// gateway is shutting down).
    pub(super) fn watch(session: Arc<Session>, mut shutdown: watch::Receiver<bool>) -> Self {
        let shared = Arc::new(Shared::default());
        let signal = shared.clone();
        let watcher = tokio::spawn(async move {
            let stop = async {
                loop {
                    match shutdown.changed().await {
                        Ok(()) if !*shutdown.borrow() => {}
                        _ => return,
                    }
                }
            };
            let reason = tokio::select! {
                reason = session.closed() => reason,
                () = stop => "the gateway is shutting down".into(),
            };
            *signal.reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
            signal.set.store(true, Ordering::Release);
            signal.waker.wake();
        });
        Self { shared, watcher }
    }

    /// Resolves with the reason once the session must end.
    pub(super) fn wait(&self) -> Wait<'_> {
        Wait {
            shared: &self.shared,
        }
    }
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Future of [`Ended::wait`].
pub(super) struct Wait<'a> {
    shared: &'a Shared,
}

impl Future for Wait<'_> {
    type Output = String;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        let ready = |s: &Shared| {
            s.set.load(Ordering::Acquire).then(|| {
                s.reason
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            })
        };
        if let Some(reason) = ready(self.shared) {
            return Poll::Ready(reason);
        }
        self.shared.waker.register(cx.waker());
        // Set between the first check and the registration: do not miss it.
        match ready(self.shared) {
            Some(reason) => Poll::Ready(reason),
            None => Poll::Pending,
        }
    }
}
