//! Adapters for async runtimes, one module per Cargo feature.
//!
//! The core crate waits on any executor already; what a runtime adds is its
//! timer (for async timeouts) and, for tokio, its own cancellation token.
//!
//! | feature | module | adds |
//! |---|---|---|
//! | `tokio` | [`rt::tokio`](crate::rt) | `acquire_timeout` on `tokio::time`; `tokio_util::sync::CancellationToken` as a [`CancelSignal`](crate::CancelSignal) |
//! | `smol` | [`rt::smol`](crate::rt) | `acquire_timeout` on async-io's timer |
//! | `async-std` | [`rt::async_std`](crate::rt) | `acquire_timeout` on async-io's timer (async-std's own) |

#[cfg(any(feature = "smol", feature = "async-std"))]
mod async_io;
#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub mod async_std;
#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub mod smol;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
