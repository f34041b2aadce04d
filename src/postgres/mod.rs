//! Named locks on a PostgreSQL server (feature `postgres`), for exclusion
//! beyond one machine: session-level advisory locks, each with a fencing
//! token.
//!
//! ```no_run
//! use packlock::postgres::LockServer;
//!
//! # fn main() -> Result<(), packlock::postgres::ServerError> {
//! // Once per process; clones share its sessions.
//! let server = LockServer::connect("host=db.internal user=packs dbname=locks sslmode=verify-full \
//!                                   sslrootcert=/etc/ssl/db-ca.pem")?;
//! // or, from async code on any executor:
//! // let server = LockServer::connect_async(conn_str).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Its locks are [`PackLock`](crate::PackLock)s, opened by name with
//! [`LockServer::lock`], with every acquire a lock file has, and holds that
//! have a [fence](crate::PackLockHold::fence) and can be
//! [lost](crate::PackLockHold::lost):
//!
//! ```no_run
//! # fn main() -> Result<(), packlock::PackLockError> {
//! # let server = packlock::postgres::LockServer::connect("host=db user=packs dbname=locks")?;
//! let lock = server.lock("packs/foo").open()?;   // .shared(true) .tier(T) .label(..) ...
//! let hold = lock.acquire()?;                    // or try_acquire, acquire_async().await, ...
//! let fence: u64 = hold.fence().expect("server locks always have a fence");
//! hold.validate()?;                              // Err(PackLockError::Lost { .. }) once dropped
//! # let _ = fence;
//! # Ok(())
//! # }
//! ```
//!
//! All `PackLock`s of one name on one server, database and schema in a
//! process share one in-process queue, as all aliases of a lock file do:
//! the process sends at most one waiter per name to the server, and its
//! shared holds share one server lock.
//!
//! # The client
//!
//! The server is reached with `tokio-postgres`, driven by a thread of
//! packlock's own running a small single-threaded tokio runtime, one per
//! [`LockServer`]: the host needs no tokio runtime, and sync code, smol,
//! async-std and tokio hosts all use it alike. TLS is rustls with the ring
//! provider, set from the connection string as libpq reads it: `sslmode`
//! `disable`, `prefer` (the default: encrypt if the server offers, without
//! checking its certificate), `require` (encrypt, no check; with
//! `sslrootcert` as `verify-ca`), `verify-ca` and `verify-full` (with the
//! CA in `sslrootcert`, a PEM file, or libpq's `~/.postgresql/root.crt`).
//! Client certificates are not supported yet.
//!
//! # Locks, names and fences
//!
//! A lock is a name: any UTF-8 string of 1 to [`MAX_NAME_LEN`] bytes
//! without NUL, always sent as a bound query parameter. Each name gets a
//! row in a table created on first use in the schema `packlock` (see
//! [`LockServerBuilder::schema`]); its id and the table's OID are the two
//! keys of a session-level advisory lock, so two names never share a lock.
//! Every exclusive acquire increments the name's **fence** and commits it
//! before returning: the fence a holder gets is larger than any an earlier
//! holder got, even across server restarts, so a storage service that
//! remembers the largest fence it has seen can refuse writes from a holder
//! that lost its lock without knowing it.
//!
//! # Sessions
//!
//! A lock lives as long as the session that took it. A `LockServer` opens
//! one session for every lock it gets without waiting, and one more for
//! each lock it has to wait for — kept while that lock is held, then kept
//! idle (at most one) for the next wait. So a process uses at most
//! `1 + (locks waited for and still waiting or held) + 1` sessions, plus a
//! short-lived connection per cancel request. When a session is lost
//! (server restart, failover, a cut or silent connection,
//! `pg_terminate_backend`), its locks are gone: holds report it, and the
//! next operation opens a new session.
//!
//! **How loss is noticed.** Every session's connection is driven by a task
//! on the client thread, which ends when the connection does; that sets
//! the session's lost signal, which completes
//! [`PackLockHold::lost`](crate::PackLockHold::lost) for every hold of the
//! session. That is at once when the server closes the session (restart,
//! shutdown, failover, `pg_terminate_backend`) or the connection is cut. A
//! connection gone silent is found by the **heartbeat**: every session not
//! waiting for a lock is pinged every
//! [`heartbeat`](LockServerBuilder::heartbeat) (5 s), and one that leaves a
//! ping unanswered for another interval is given up and closed — lost
//! within two intervals. The server is asked to probe its side with TCP
//! keepalives at the same pace, so it frees the locks of a client host that
//! vanished within about four.
//! [`PackLockHold::validate`](crate::PackLockHold::validate) asks the
//! server (one round trip), so it also catches a loss not reported yet.
//!
//! **Outages.** A wait that finds the server out of reach (restarting, the
//! connection cut) starts over on a new session after a pause (0.1 s,
//! doubling up to 2 s), until it has the lock or its deadline or cancel
//! comes. Other operations, `try_acquire` among them, fail on their first
//! attempt with [`ServerError::Unavailable`].
//!
//! **Cancelled waits.** A wait runs as `pg_advisory_lock` on a session of
//! its own; an acquire abandoned while it waits (a cancel, a timeout, a
//! dropped future) sends the server a cancel request for that query,
//! repeated with a growing pause until the query ends, so within
//! milliseconds the process neither holds nor waits for the lock on the
//! server. A wait whose connection went silent, so that no cancel gets
//! through, has that connection closed after two heartbeat intervals.
//!
//! **Session settings.** Every session turns off `statement_timeout`,
//! `lock_timeout`, `idle_session_timeout` and
//! `idle_in_transaction_session_timeout`, runs read committed statements,
//! and sets TCP keepalives, `tcp_user_timeout` and (PostgreSQL 14 and
//! later) `client_connection_check_interval` from the heartbeat, on both
//! ends.
//!
//! **`fork`.** A `LockServer` does not survive `fork(2)`: its client
//! thread stays in the parent. Connect in the child.
//!
//! # Privileges
//!
//! The role connects to the database and, on first use, creates the schema
//! and its two tables (`CREATE` on the database). Later, or when an
//! administrator created them, it needs `USAGE` on the schema, `SELECT`,
//! `INSERT`, `UPDATE` on `names` and `SELECT`, `INSERT`, `UPDATE`, `DELETE`
//! on `holds`. To see the client address of holders logged in as other
//! roles it needs `pg_read_all_stats`.

mod backend;
mod builder;
mod cancel;
mod config;
mod driver;
mod error;
mod holders;
mod schema;
mod server;
mod session;
#[cfg(all(test, unix))] // against a throwaway server, started the Unix way
mod tests;
mod tls;

pub use builder::ServerLockBuilder;
pub use error::ServerError;
pub use schema::MAX_NAME_LEN;
pub use server::{DEFAULT_SCHEMA, LockServer, LockServerBuilder};
