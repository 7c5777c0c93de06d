//! Waiting for the GPU inside a future: a one-shot value a wgpu callback sets (a buffer
//! mapped, submitted work done), awaited by the caller. wgpu runs such callbacks from
//! `Device::poll` on native backends, which `Gpu::poll_until` calls inside the future
//! (the thread then waits there, as a native wgpu program waits in `poll`), and from the
//! browser's event loop on WebGPU, where the future only awaits.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::context::lock;

/// The shared state of one wait.
struct Slot<T> {
    /// The value once set; `Some(None)` when the setter was dropped unset (wgpu dropped
    /// the callback without calling it: the device was lost).
    outcome: Option<Option<T>>,
    waker: Option<Waker>,
}

/// Sets the value of a wait (moved into a wgpu callback).
pub(crate) struct Setter<T>(Option<Arc<Mutex<Slot<T>>>>);

/// The future of a wait: the value, or `None` if the callback was dropped uncalled.
pub(crate) struct Waiting<T>(Arc<Mutex<Slot<T>>>);

/// A new wait: its setter and its future.
pub(crate) fn one_shot<T>() -> (Setter<T>, Waiting<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        outcome: None,
        waker: None,
    }));
    (Setter(Some(slot.clone())), Waiting(slot))
}

impl<T> Setter<T> {
    pub fn set(mut self, value: T) {
        self.finish(Some(value));
    }

    /// Records the outcome and wakes the waiting task (after the lock is let go).
    fn finish(&mut self, outcome: Option<T>) {
        let Some(slot) = self.0.take() else { return };
        let waker = {
            let mut slot = lock(&slot);
            slot.outcome = Some(outcome);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Setter<T> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl<T> Future for Waiting<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = lock(&self.0);
        match slot.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                slot.waker = Some(context.waker().clone());
                Poll::Pending
            }
        }
    }
}
