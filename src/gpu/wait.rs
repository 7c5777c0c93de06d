//! Waiting for the GPU without blocking inside the library: a one-shot value a wgpu
//! callback sets (a buffer mapped, submitted work done), awaited as a future. wgpu calls
//! such callbacks from `Device::poll` on native backends and from the browser's event loop
//! on WebGPU, so a native wait polls the device for the caller's future and a web wait
//! only awaits.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::context::lock;

/// The shared state of one wait: the value once set, and the task to wake then.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// Sets the value of a wait (moved into a wgpu callback).
pub(crate) struct Setter<T>(Arc<Mutex<Slot<T>>>);

/// The future of a wait: ready once the setter has run.
pub(crate) struct Waiting<T>(Arc<Mutex<Slot<T>>>);

/// A new wait: its setter and its future.
pub(crate) fn one_shot<T>() -> (Setter<T>, Waiting<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    (Setter(slot.clone()), Waiting(slot))
}

impl<T> Setter<T> {
    pub fn set(self, value: T) {
        let mut slot = lock(&self.0);
        slot.value = Some(value);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

impl<T> Future for Waiting<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<T> {
        let mut slot = lock(&self.0);
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(context.waker().clone());
                Poll::Pending
            }
        }
    }
}
