//! [`ServerLockBuilder`]: opening a named lock on a [`LockServer`] as a
//! [`PackLock`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backend::ServerLock;
use super::schema;
use super::server::LockServer;
use crate::options::{Options, clamp_label};
use crate::{PackLock, PackLockError, Tier};

/// Options for a named lock on a lock server, made by
/// [`LockServer::lock`]; [`open`](Self::open) gives a [`PackLock`] with
/// every acquire of a lock file, whose holds also have a
/// [fence](crate::PackLockHold::fence) and can be
/// [lost](crate::PackLockHold::lost).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use packlock::{Tier, postgres::LockServer};
///
/// const PER_PACK: Tier = Tier::new(2, "per-pack");
/// # fn main() -> Result<(), packlock::PackLockError> {
/// let server = LockServer::connect("host=db user=packs dbname=locks")?;
/// let lock = server
///     .lock("packs/foo")
///     .tier(PER_PACK)
///     .label("nightly sync")
///     .log_wait_after(Duration::from_secs(5))
///     .open()?;
/// let hold = lock.acquire()?;
/// println!("fence {}", hold.fence().expect("server locks have fences"));
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until opened"]
pub struct ServerLockBuilder {
    server: LockServer,
    name: String,
    options: Options,
}

impl LockServer {
    /// Starts opening the lock named `name` on this server: any UTF-8 of 1
    /// to [`MAX_NAME_LEN`](super::MAX_NAME_LEN) bytes without NUL, such as
    /// `"packs/foo"`. Every process (and every [`PackLock`] of a process)
    /// that opens the same name on the same server, database and
    /// [schema](super::LockServerBuilder::schema) locks the same lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let server = packlock::postgres::LockServer::connect("host=db user=packs dbname=locks")?;
    /// let lock = server.lock("packs/foo").open()?;
    /// let hold = lock.acquire()?;
    /// let fence: u64 = hold.fence().expect("server locks always have a fence");
    /// hold.validate()?;
    /// # let _ = fence;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self, name: &str) -> ServerLockBuilder {
        ServerLockBuilder {
            server: self.clone(),
            name: name.to_string(),
            options: Options::default(),
        }
    }
}

impl ServerLockBuilder {
    /// Makes every acquire of this lock take a **shared** hold (the
    /// server's shared advisory lock): shared holds coexist, across
    /// processes and machines, and exclude exclusive ones both ways.
    /// Default: exclusive. All shared holds of one process share one
    /// server lock, and so one fence, larger than every fence before it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let server = packlock::postgres::LockServer::connect("host=db user=packs dbname=locks")?;
    /// let readers = server.lock("packs/foo").shared(true).open()?;
    /// let (a, b) = (readers.acquire()?, readers.try_acquire()?);
    /// assert_eq!(a.fence(), b.fence());
    /// # Ok(())
    /// # }
    /// ```
    pub fn shared(mut self, shared: bool) -> Self {
        self.options.shared = shared;
        self
    }

    /// Puts the lock in a [`Tier`] of the lock order, as
    /// [`PackLockBuilder::tier`](crate::PackLockBuilder::tier) does for a
    /// lock file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// const FLEET: packlock::Tier = packlock::Tier::new(0, "fleet");
    /// let server = packlock::postgres::LockServer::connect("host=db user=packs dbname=locks")?;
    /// let lock = server.lock("deploy").tier(FLEET).open()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tier(mut self, tier: Tier) -> Self {
        self.options.tier = Some(tier);
        self
    }

    /// Labels this lock's holds: the label is recorded on the server with
    /// the hold, where [`PackLock::holders`], `Busy` errors and the wait
    /// log line of every other client find it (with the holder's client
    /// address). At most 1,024 bytes on one line, as for lock files.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let server = packlock::postgres::LockServer::connect("host=db user=packs dbname=locks")?;
    /// let lock = server.lock("deploy").label("deploy of v1.2 by ci-42").open()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.options.label = Some(clamp_label(&label.into()));
        self
    }

    /// How long an acquire waits before it logs, once, at `info` level
    /// who holds the lock. Default: one second; [`Duration::MAX`] means
    /// never.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), packlock::PackLockError> {
    /// let server = packlock::postgres::LockServer::connect("host=db user=packs dbname=locks")?;
    /// let lock = server
    ///     .lock("deploy")
    ///     .log_wait_after(std::time::Duration::from_secs(10))
    ///     .open()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn log_wait_after(mut self, threshold: Duration) -> Self {
        self.options.log_wait_after = threshold;
        self
    }

    /// Returns the lock, not yet held. Nothing is sent to the server: the
    /// name's row is made by the first acquire. [`PackLock::path`] is the
    /// lock's display name, `postgres://host:port/dbname/NAME`.
    ///
    /// # Errors
    ///
    /// [`PackLockError::Server`] with
    /// [`ServerError::InvalidName`](super::ServerError::InvalidName) when
    /// the name is empty, longer than [`MAX_NAME_LEN`](super::MAX_NAME_LEN)
    /// bytes or contains NUL.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use packlock::{PackLockError, postgres::{LockServer, ServerError}};
    ///
    /// # fn main() -> Result<(), PackLockError> {
    /// let server = LockServer::connect("host=db user=packs dbname=locks")?;
    /// let err = server.lock("").open().unwrap_err();
    /// assert!(matches!(err, PackLockError::Server { source: ServerError::InvalidName { .. }, .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(self) -> Result<PackLock, PackLockError> {
        schema::check_name(&self.name)?;
        let backend = ServerLock::new(self.server, self.name);
        Ok(PackLock::with_backend(Arc::new(backend), self.options))
    }
}

impl fmt::Debug for ServerLockBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLockBuilder")
            .field("server", &self.server)
            .field("name", &self.name)
            .field("options", &self.options)
            .finish()
    }
}
