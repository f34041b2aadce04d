//! The client thread: one per [`LockServer`](super::LockServer) (shared by
//! its clones), running a small single-threaded tokio runtime that drives
//! every connection and query of that server. Callers never need a runtime
//! of their own: sync callers block on the task's result, async callers
//! await it, under any executor.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Owns the client thread; it stops (closing every session) when dropped.
#[derive(Debug)]
pub(crate) struct Driver {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Driver {
    /// Starts the thread and its runtime.
    pub(crate) fn start() -> io::Result<Driver> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("packlock-postgres".into()).spawn(move || {
            // Runs the tasks until the Driver is dropped (the sender with it).
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(Driver { handle, _stop: stop })
    }

    /// Runs `future` on the client thread.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        Task(self.handle.spawn(future))
    }

    /// Runs `future` on the client thread and blocks until it is done.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        futures_lite::future::block_on(self.spawn(future))
    }
}

/// A future's result from the client thread: `None` if the thread stopped
/// (or the task panicked) before it was done. Awaitable on any executor.
pub(crate) struct Task<T>(JoinHandle<T>);

impl<T> Future for Task<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}
