//! [`LockServer`]: a connection to the lock server, shared by every lock of
//! a process, and the lock operations the acquire pipeline wraps.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::cancel::WaitCancel;
use super::config::{DEFAULT_HEARTBEAT, ServerConfig};
use super::driver::{Driver, Task};
use super::error::{ServerError, is_unavailable, reason};
use super::holders::{self, LockStatements, ServerHolder};
use super::schema::{self, Tables};
use super::session::{Session, session_is_ours};
use super::tls;
use crate::backend::LostSignal;

/// The schema that holds the lock tables unless the builder names another.
pub const DEFAULT_SCHEMA: &str = "packlock";

/// How many sessions that waited for a lock are kept open, idle, for the
/// next wait once their lock is released.
const IDLE_WAITERS: usize = 1;

/// How many names' ids a server keeps at most (a few hundred KiB).
const CACHED_IDS: usize = 4096;

/// The shortest heartbeat: pinging more often than this only loads the
/// server.
const MIN_HEARTBEAT: Duration = Duration::from_secs(1);

/// The longest heartbeat: past it, a vanished peer goes unnoticed for
/// hours, and the server's keepalive settings overflow.
const MAX_HEARTBEAT: Duration = Duration::from_secs(60 * 60);

/// The pause before a wait that lost the server tries again; it doubles
/// with each failed attempt, up to [`RETRY_AT_MOST`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_AT_MOST: Duration = Duration::from_secs(2);

/// A PostgreSQL server that holds named locks: session-level advisory
/// locks with fencing tokens.
///
/// Connect once per process and share it: clones are cheap and use the
/// same sessions. Connecting checks the server at once — reachable, the
/// credentials accepted, the lock tables there or created — and fails with
/// an error naming the server (never the password): at once when the
/// server refuses the connection, within `connect_timeout` (10 s by
/// default) when packets are dropped; [`ServerError::Unavailable`] when it
/// is out of reach, [`ServerError::Connect`] when it refused us. A session
/// lost later
/// (server restarted, connection cut, backend terminated) ends the locks it
/// held; the next operation opens a new one.
///
/// # Example
///
/// ```no_run
/// use packlock::postgres::LockServer;
///
/// # fn main() -> Result<(), packlock::postgres::ServerError> {
/// let server = LockServer::connect("host=db.internal user=packs dbname=locks")?;
/// println!("locks on {server}"); // db.internal:5432/locks as packs
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LockServer {
    inner: Arc<Inner>,
}

/// Options for [`LockServer`]: the schema of the lock tables, and how
/// often sessions are checked.
///
/// # Example
///
/// ```no_run
/// use packlock::postgres::LockServer;
///
/// # fn main() -> Result<(), packlock::postgres::ServerError> {
/// let server = LockServer::builder("postgresql://packs@db.internal/locks?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem")
///     .schema("build_locks")
///     .connect()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LockServerBuilder {
    connection: String,
    schema: String,
    heartbeat: Duration,
}

struct Inner {
    config: ServerConfig,
    /// `host:port/dbname as user`, for every message.
    server: String,
    /// What the server is, whatever it was called (see [`identity`]).
    identity: String,
    schema: String,
    tls: MakeRustlsConnect,
    tables: Tables,
    statements: LockStatements,
    /// The session of every hold taken without waiting.
    main: tokio::sync::Mutex<Arc<Session>>,
    /// Sessions that waited for a lock and were released since.
    idle: Mutex<Vec<Arc<Session>>>,
    /// Lock name -> id in the names table.
    ids: Mutex<HashMap<String, i32>>,
    /// The locks this process holds, or is acquiring, through this server.
    holds: Mutex<HashMap<String, Slot>>,
    /// Lock name -> why a wait for it found the server out of reach, kept
    /// from that wait's first failed attempt until an attempt reaches the
    /// server again: what a wait that timed out meanwhile reports.
    trouble: Mutex<HashMap<String, String>>,
    /// Last, so that the client thread stops after the sessions are dropped.
    driver: Driver,
}

enum Slot {
    /// An acquire of this name is under way.
    Reserved,
    Held(Hold),
}

#[derive(Clone)]
struct Hold {
    session: Arc<Session>,
    id: i32,
    shared: bool,
    /// Held by a session of its own (it had to wait), not the main one.
    own_session: bool,
}

/// Typed parameters for `query_typed`, which sends the statement with them
/// and needs no prepare round trip.
/// The two advisory keys and the session's token, as a guarded
/// statement's parameters `$1`, `$2`, `$3` (see [`guarded`]).
fn typed<'a>(keys: &'a (i32, i32), token: &'a String) -> [(&'a (dyn ToSql + Sync), Type); 3] {
    [(&keys.0, Type::INT4), (&keys.1, Type::INT4), (token, Type::TEXT)]
}

/// `SELECT call`, run only on our own server session (the token in `$3`;
/// see [`session_is_ours`]): NULL elsewhere.
fn guarded(call: &str) -> String {
    let ours = session_is_ours("$3");
    format!("SELECT CASE WHEN {ours} THEN {call} END")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LockServer {
    /// Connects to the server named by `connection`: libpq's
    /// `key=value` form or a `postgresql://` URL, with `sslmode` (`disable`,
    /// `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert`
    /// as libpq reads them. Blocks the calling thread until connected.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use packlock::postgres::LockServer;
    ///
    /// # fn main() -> Result<(), packlock::postgres::ServerError> {
    /// let server = LockServer::connect("host=db.internal user=packs dbname=locks")?;
    /// let same = LockServer::connect("postgresql://packs@db.internal/locks")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(connection: &str) -> Result<LockServer, ServerError> {
        LockServer::builder(connection).connect()
    }

    /// [`connect`](Self::connect) for async code: the connection is made on
    /// packlock's client thread, so no executor thread ever blocks, under
    /// any executor.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use packlock::postgres::LockServer;
    ///
    /// # futures_lite::future::block_on(async {
    /// let server = LockServer::connect_async("host=db.internal user=packs dbname=locks").await?;
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// # });
    /// ```
    pub async fn connect_async(connection: &str) -> Result<LockServer, ServerError> {
        LockServer::builder(connection).connect_async().await
    }

    /// Options beyond the connection string.
    ///
    /// # Example
    ///
    /// ```no_run
    /// let server = packlock::postgres::LockServer::builder("host=db.internal user=packs")
    ///     .schema("ci_locks")
    ///     .connect()?;
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// ```
    pub fn builder(connection: &str) -> LockServerBuilder {
        LockServerBuilder {
            connection: connection.to_string(),
            schema: DEFAULT_SCHEMA.into(),
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }

    /// The schema of the lock tables.
    ///
    /// # Example
    ///
    /// ```no_run
    /// let server = packlock::postgres::LockServer::connect("host=db.internal user=packs")?;
    /// assert_eq!(server.schema(), "packlock");
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// ```
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }
}

impl LockServerBuilder {
    /// The schema that holds the lock tables (default [`DEFAULT_SCHEMA`]),
    /// created on first use when the role may. Locks of different schemas
    /// never exclude each other.
    ///
    /// # Example
    ///
    /// ```no_run
    /// let server = packlock::postgres::LockServer::builder("host=db.internal user=packs")
    ///     .schema("ci_locks")
    ///     .connect()?;
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// ```
    pub fn schema(mut self, schema: &str) -> LockServerBuilder {
        self.schema = schema.to_string();
        self
    }

    /// How often each session that is not waiting for a lock is pinged
    /// (default 5 s, at least 1 s, at most 1 h). A session whose ping goes
    /// unanswered for one more interval is given up: its holds'
    /// [`lost`](crate::PackLockHold::lost) completes, so a silent
    /// connection — a network partition, a frozen server — is noticed
    /// within two intervals. The server is asked to send TCP keepalives
    /// at the same pace (three missed probes end the session there), so
    /// it frees the locks of a client host that vanished within about
    /// four intervals.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let server = packlock::postgres::LockServer::builder("host=db.internal user=packs")
    ///     .heartbeat(Duration::from_secs(2)) // lost() within 4 s of silence
    ///     .connect()?;
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// ```
    pub fn heartbeat(mut self, every: Duration) -> LockServerBuilder {
        self.heartbeat = every.clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
        self
    }

    /// Connects, blocking the calling thread (see [`LockServer::connect`]).
    ///
    /// # Example
    ///
    /// ```no_run
    /// let server = packlock::postgres::LockServer::builder("host=db.internal user=packs")
    ///     .connect()?;
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// ```
    pub fn connect(self) -> Result<LockServer, ServerError> {
        let (driver, config, server) = self.prepare()?;
        let connecting = connect_on_client_thread(config, server.clone(), self.schema);
        finish(driver.block_on(connecting), driver, &server)
    }

    /// Connects without blocking any executor thread (see
    /// [`LockServer::connect_async`]).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # futures_lite::future::block_on(async {
    /// let server = packlock::postgres::LockServer::builder("host=db.internal user=packs")
    ///     .connect_async()
    ///     .await?;
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// # });
    /// ```
    pub async fn connect_async(self) -> Result<LockServer, ServerError> {
        let (driver, config, server) = self.prepare()?;
        let connecting = connect_on_client_thread(config, server.clone(), self.schema);
        finish(driver.spawn(connecting).await, driver, &server)
    }

    fn prepare(&self) -> Result<(Driver, ServerConfig, String), ServerError> {
        schema::check_schema(&self.schema)?;
        let mut config = ServerConfig::parse(&self.connection)?;
        config.heartbeat = self.heartbeat;
        let server = config.describe();
        let driver = Driver::start().map_err(|e| ServerError::Connect {
            server: server.clone(),
            reason: format!("cannot start the client thread: {e}"),
        })?;
        Ok((driver, config, server))
    }
}

/// What connecting makes on the client thread.
struct Connected {
    config: ServerConfig,
    schema: String,
    tls: MakeRustlsConnect,
    tables: Tables,
    main: Arc<Session>,
    identity: String,
}

async fn connect_on_client_thread(
    config: ServerConfig,
    server: String,
    schema: String,
) -> Result<Connected, ServerError> {
    let tls = tls::connector(&config.tls, &server)?;
    let main = Session::open(&config, &tls, &server).await?;
    let tables = schema::ensure(&main.client, &schema).await.map_err(|e| ServerError::Schema {
        server: server.clone(),
        schema: schema.clone(),
        reason: reason(&e),
    })?;
    let identity = identity(&main, &config).await;
    Ok(Connected { config, schema, tls, tables, main, identity })
}

/// What the server and database are, whatever they were called:
/// `localhost` and `127.0.0.1` are one server, and a thread that holds a
/// lock through one must get `Reentrant` through the other, not wait for
/// itself. The cluster's system identifier and the database's OID, where
/// the role may call `pg_control_system()` (superusers, and roles granted
/// `EXECUTE` on it); else the address as spelled.
async fn identity(session: &Session, config: &ServerConfig) -> String {
    let sql = "SELECT system_identifier::text || '/' ||
                      (SELECT oid FROM pg_database WHERE datname = current_database())::text
               FROM pg_control_system()";
    match session.client.query_one(sql, &[]).await {
        Ok(row) => format!("postgres system {}", row.get::<_, String>(0)),
        Err(e) => {
            log::debug!("cannot read the server's system identifier: {}", reason(&e));
            config.location()
        }
    }
}

fn finish(
    connected: Option<Result<Connected, ServerError>>,
    driver: Driver,
    server: &str,
) -> Result<LockServer, ServerError> {
    let connected = connected.ok_or_else(|| ServerError::Connect {
        server: server.to_string(),
        reason: "the client thread stopped".into(),
    })??;
    Ok(LockServer {
        inner: Arc::new(Inner {
            server: server.to_string(),
            identity: connected.identity,
            config: connected.config,
            schema: connected.schema,
            tls: connected.tls,
            statements: LockStatements::new(&connected.tables),
            tables: connected.tables,
            main: tokio::sync::Mutex::new(connected.main),
            idle: Mutex::default(),
            ids: Mutex::default(),
            holds: Mutex::default(),
            trouble: Mutex::default(),
            driver,
        }),
    })
}

impl fmt::Display for LockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.server)
    }
}

impl fmt::Debug for LockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockServer")
            .field("server", &self.inner.server)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LockServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = ServerConfig::parse(&self.connection)
            .map_or_else(|_| "(invalid connection string)".to_string(), |c| c.describe());
        f.debug_struct("LockServerBuilder")
            .field("server", &server)
            .field("schema", &self.schema)
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

// The operations the acquire pipeline wraps. Each runs on the client
// thread; the sync forms block the calling thread, the async ones await on
// any executor.
#[cfg_attr(not(all(test, unix)), allow(dead_code))] // some serve only the tests below
impl LockServer {
    /// Takes `name` if it is free: `Some(fence)` when had, `None` when
    /// another session holds it (exclusively, or at all for an exclusive
    /// try). An exclusive acquire increments and commits the name's fence
    /// before returning it; a shared one returns the current fence.
    pub(crate) fn try_lock(&self, name: &str, shared: bool) -> Result<Option<u64>, ServerError> {
        self.run("acquire", name, self.inner.clone().try_lock(name.to_string(), shared))
    }

    /// Waits for `name`, blocking the calling thread, until had or until
    /// `cancel` is cancelled (from another thread).
    pub(crate) fn lock_wait(
        &self,
        name: &str,
        shared: bool,
        cancel: &WaitCancel,
    ) -> Result<u64, ServerError> {
        let waiting = self.inner.clone().lock(name.to_string(), shared, cancel.clone());
        self.run("acquire", name, waiting)
    }

    /// [`lock_wait`](Self::lock_wait) for async code. Dropping the future cancels the
    /// wait; a lock had meanwhile is released.
    pub(crate) fn lock_async(&self, name: &str, shared: bool, cancel: &WaitCancel) -> LockWait {
        let waiting = self.inner.clone().lock(name.to_string(), shared, cancel.clone());
        LockWait {
            task: Some(self.inner.driver.spawn(waiting)),
            cancel: cancel.clone(),
            server: self.clone(),
            name: name.to_string(),
        }
    }

    /// Releases `name`, held through this server by this process.
    pub(crate) fn unlock(&self, name: &str) -> Result<(), ServerError> {
        self.run("release", name, self.inner.clone().unlock(name.to_string()))
    }

    /// The name's fence: how many exclusive acquires it has seen.
    pub(crate) fn fence(&self, name: &str) -> Result<u64, ServerError> {
        self.run("fence", name, self.inner.clone().fence(name.to_string()))
    }

    /// Who holds `name`, from the server's lock table.
    pub(crate) fn holders(&self, name: &str) -> Result<Vec<ServerHolder>, ServerError> {
        self.run("holders", name, self.inner.clone().holders(name.to_string()))
    }

    /// Records `label` as the label of this process's hold of `name`.
    pub(crate) fn record_holder(&self, name: &str, label: &str) -> Result<(), ServerError> {
        let recording = self.inner.clone().record_holder(name.to_string(), label.to_string());
        self.run("label", name, recording)
    }

    /// Whether this process still holds `name`: false once its session was
    /// lost (connection closed, server restarted, backend terminated), or
    /// when it never held it. Asks the server.
    pub(crate) fn is_current(&self, name: &str) -> Result<bool, ServerError> {
        Ok(self.check(name)?.unwrap_or(false))
    }

    /// As [`is_current`](Self::is_current), but `None` when this server
    /// does not hold `name` at all (rather than held and lost).
    pub(crate) fn check(&self, name: &str) -> Result<Option<bool>, ServerError> {
        self.run("check", name, self.inner.clone().is_current(name.to_string()))
    }

    /// Why a wait for `name` found the server out of reach, if one did and
    /// no acquire of it has reached the server since.
    pub(crate) fn trouble(&self, name: &str) -> Option<String> {
        lock(&self.inner.trouble).get(name).cloned()
    }

    /// The signal set when the session holding `name` ends, if held.
    pub(crate) fn lost_signal(&self, name: &str) -> Option<Arc<LostSignal>> {
        match lock(&self.inner.holds).get(name) {
            Some(Slot::Held(hold)) => Some(hold.session.lost_signal()),
            _ => None,
        }
    }

    /// The server as `host:port/dbname`: without the user, since every
    /// role connected there shares its advisory locks.
    pub(crate) fn location(&self) -> String {
        self.inner.config.location()
    }

    /// What the server is, for telling locks apart (see [`identity`]).
    pub(crate) fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// The backend pid of the session holding `name`, if held (tests
    /// terminate it to lose a session).
    pub(crate) fn holder_pid(&self, name: &str) -> Option<i32> {
        match lock(&self.inner.holds).get(name) {
            Some(Slot::Held(hold)) => Some(hold.session.pid),
            _ => None,
        }
    }

    /// How many names' ids this server keeps (tests check the bound).
    #[cfg(test)]
    pub(crate) fn cached_ids(&self) -> usize {
        lock(&self.inner.ids).len()
    }

    /// How many sessions this server has open (tests check the bound).
    pub(crate) fn open_sessions(&self) -> usize {
        let holds = lock(&self.inner.holds);
        let waited = holds
            .values()
            .filter(|slot| matches!(slot, Slot::Held(h) if h.own_session && !h.session.is_lost()))
            .count();
        1 + waited + lock(&self.inner.idle).len()
    }

    fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        name: &str,
        operation: impl Future<Output = Result<T, ServerError>> + Send + 'static,
    ) -> Result<T, ServerError> {
        let done = self.inner.driver.block_on(operation);
        done.unwrap_or_else(|| {
            Err(self.inner.error(what, name, "the client thread stopped".into()))
        })
    }
}

/// An async wait for a server lock ([`LockServer::lock_async`]).
#[cfg_attr(not(all(test, unix)), allow(dead_code))]
pub(crate) struct LockWait {
    task: Option<Task<Result<u64, ServerError>>>,
    cancel: WaitCancel,
    server: LockServer,
    name: String,
}

impl Future for LockWait {
    type Output = Result<u64, ServerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(self.server.inner.error(
                "acquire",
                &self.name,
                "polled after completion".into(),
            )));
        };
        let done = std::task::ready!(Pin::new(task).poll(cx));
        self.task = None;
        let stopped = || self.server.inner.error("acquire", &self.name, "client stopped".into());
        Poll::Ready(done.unwrap_or_else(|| Err(stopped())))
    }
}

impl Drop for LockWait {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        // Abandoned: stop the wait, and release a lock it got meanwhile.
        self.cancel.cancel();
        let inner = self.server.inner.clone();
        let name = std::mem::take(&mut self.name);
        self.server.inner.driver.spawn(async move {
            if let Some(Ok(_)) = task.await
                && let Err(e) = inner.clone().unlock(name).await
            {
                log::warn!("{e}");
            }
        });
    }
}

/// Takes the name's slot back out of the table unless the acquire holds.
struct Reservation<'a> {
    inner: &'a Inner,
    name: &'a str,
    held: bool,
}

impl Reservation<'_> {
    fn hold(mut self, hold: Hold) {
        lock(&self.inner.holds).insert(self.name.to_string(), Slot::Held(hold));
        self.held = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.held {
            lock(&self.inner.holds).remove(self.name);
        }
    }
}

impl Inner {
    fn error(&self, what: &'static str, name: &str, reason: String) -> ServerError {
        ServerError::Operation { server: self.server.clone(), what, name: name.to_string(), reason }
    }

    /// A failed query: [`ServerError::Unavailable`] when the session or
    /// the server went away under it.
    fn query_error(
        &self,
        what: &'static str,
        name: &str,
        e: &tokio_postgres::Error,
    ) -> ServerError {
        if is_unavailable(e) {
            let reason = format!("{what} of lock {name:?} failed: {}", reason(e));
            return ServerError::Unavailable { server: self.server.clone(), reason };
        }
        self.error(what, name, reason(e))
    }

    fn cancelled(&self, name: &str) -> ServerError {
        ServerError::Cancelled { server: self.server.clone(), name: name.to_string() }
    }

    /// Marks `name` as being acquired; fails if this process holds it or is
    /// acquiring it through this server already.
    fn reserve<'a>(&'a self, name: &'a str) -> Result<Reservation<'a>, ServerError> {
        schema::check_name(name)?;
        let mut holds = lock(&self.holds);
        if holds.contains_key(name) {
            return Err(ServerError::AlreadyHeld {
                server: self.server.clone(),
                name: name.to_string(),
            });
        }
        holds.insert(name.to_string(), Slot::Reserved);
        Ok(Reservation { inner: self, name, held: false })
    }

    fn held(&self, name: &str) -> Option<Hold> {
        match lock(&self.holds).get(name) {
            Some(Slot::Held(hold)) => Some(hold.clone()),
            _ => None,
        }
    }

    /// The main session, reconnected if it was lost.
    async fn main_session(&self) -> Result<Arc<Session>, ServerError> {
        let mut main = self.main.lock().await;
        if main.is_lost() {
            log::info!("lock server {}: session lost; reconnecting", self.server);
            *main = Session::open(&self.config, &self.tls, &self.server).await?;
        }
        Ok(main.clone())
    }

    /// A session to wait on: an idle one, or a new one.
    async fn waiting_session(&self) -> Result<Arc<Session>, ServerError> {
        while let Some(session) = lock(&self.idle).pop() {
            if !session.is_lost() {
                return Ok(session);
            }
        }
        Session::open(&self.config, &self.tls, &self.server).await
    }

    fn return_waiting_session(&self, session: Arc<Session>) {
        let mut idle = lock(&self.idle);
        if !session.is_lost() && idle.len() < IDLE_WAITERS {
            idle.push(session);
        }
    }

    /// The id of `name` in the names table, inserted on first use.
    ///
    /// A name that exists is only read: an `INSERT ... ON CONFLICT`
    /// evaluates the id's default — taking a number from the identity
    /// sequence — before it finds the conflict, so a fleet of short-lived
    /// processes would use the sequence up one number per process and
    /// name. Only the first use of a name (or two first uses racing) takes
    /// a number.
    async fn name_id(&self, name: &str) -> Result<i32, ServerError> {
        if let Some(id) = lock(&self.ids).get(name) {
            return Ok(*id);
        }
        let session = self.main_session().await?;
        let names = &self.tables.names;
        let insert = format!(
            "WITH found AS (SELECT id FROM {names} WHERE name = $1),
                  added AS (INSERT INTO {names} (name) SELECT $1
                            WHERE NOT EXISTS (SELECT FROM found)
                            ON CONFLICT (name) DO NOTHING RETURNING id)
             SELECT id FROM found UNION ALL SELECT id FROM added"
        );
        let failed = |e| self.query_error("acquire", name, &e);
        let inserted = session.client.query_opt(&insert, &[&name]).await.map_err(failed)?;
        let id: i32 = match inserted {
            Some(row) => row.get(0),
            // Inserted by someone else, maybe just now: a new statement sees it.
            None => {
                let select = format!("SELECT id FROM {names} WHERE name = $1");
                session.client.query_one(&select, &[&name]).await.map_err(failed)?.get(0)
            }
        };
        let mut ids = lock(&self.ids);
        if ids.len() >= CACHED_IDS {
            // Bounded: a process that passes through many names forgets
            // them all now and then, and reads an id again when it needs it.
            ids.clear();
        }
        ids.insert(name.to_string(), id);
        drop(ids);
        Ok(id)
    }

    async fn try_lock(
        self: Arc<Self>,
        name: String,
        shared: bool,
    ) -> Result<Option<u64>, ServerError> {
        let reservation = self.reserve(&name)?;
        let id = self.name_id(&name).await?;
        let session = self.main_session().await?;
        let fence = if shared {
            self.try_lock_shared(&session, &name, id).await?
        } else {
            self.try_lock_exclusive(&session, &name, id).await?
        };
        lock(&self.trouble).remove(&name); // the server is in reach again
        if fence.is_some() {
            reservation.hold(Hold { session, id, shared, own_session: false });
        }
        Ok(fence)
    }

    /// Try-lock, fence bump and record in one statement: one round trip.
    async fn try_lock_exclusive(
        &self,
        session: &Arc<Session>,
        name: &str,
        id: i32,
    ) -> Result<Option<u64>, ServerError> {
        let sql = &self.statements.try_exclusive;
        let row = match self.query_lock(session, sql, id, name).await {
            Ok(row) => row,
            Err(e) => {
                // Advisory locks ignore the rollback: give back what the
                // failed statement may have taken.
                let error = self.query_error("acquire", name, &e);
                self.give_back(session, name, id, false).await;
                return Err(error);
            }
        };
        match row.get::<_, Option<bool>>(0) {
            Some(true) => {}
            Some(false) => return Ok(None),
            None => return Err(self.not_our_session(session, name)),
        }
        match self.fence_of(name, row.get(1)) {
            Ok(fence) => Ok(Some(fence)),
            Err(e) => {
                self.give_back(session, name, id, false).await;
                Err(e)
            }
        }
    }

    /// A lock statement found itself on another server session than this
    /// session's: a pooler hands sessions around. Nothing was taken there;
    /// the session is closed, so nothing is left half done.
    fn not_our_session(&self, session: &Session, name: &str) -> ServerError {
        session.abandon();
        let reason = "the statement ran on a server session that is not this client's: a pooler \
                      (PgBouncer's transaction or statement pooling) hands server sessions \
                      around, and session locks need one of their own; connect to the server \
                      directly or through session pooling"
            .into();
        self.error("acquire", name, reason)
    }

    /// The fence a grant's statement returned; `None` when the name's row
    /// was not there to count it: the lock tables were made anew since the
    /// id was read (see `holders::SAME_ROW`). Never hand out a fence that
    /// does not grow, nor a lock under a key others no longer use.
    fn fence_of(&self, name: &str, fence: Option<i64>) -> Result<u64, ServerError> {
        if let Some(fence) = fence.and_then(|f| u64::try_from(f).ok()) {
            return Ok(fence);
        }
        lock(&self.ids).remove(name);
        let reason = "its row in the lock tables is gone or changed: were they made anew while \
                      this process used them? Connect again"
            .into();
        Err(self.error("acquire", name, reason))
    }

    /// Gives back a lock an acquire may have taken on `session` and must
    /// not keep; a session that cannot give it back is closed, which does.
    async fn give_back(&self, session: &Session, name: &str, id: i32, shared: bool) {
        if let Err(e) = self.unlock_only(session, name, id, shared).await {
            log::warn!("{e}; closing the session instead");
            session.abandon();
        }
    }

    async fn try_lock_shared(
        &self,
        session: &Arc<Session>,
        name: &str,
        id: i32,
    ) -> Result<Option<u64>, ServerError> {
        let sql = guarded("pg_try_advisory_lock_shared($1, $2)");
        let keys = self.keys(id);
        let row = session.client.query_typed_one(&sql, &typed(&keys, &session.token)).await;
        let got: Option<bool> = row.map_err(|e| self.query_error("acquire", name, &e))?.get(0);
        match got {
            Some(true) => self.granted(session, name, id, true).await.map(Some),
            Some(false) => Ok(None),
            None => Err(self.not_our_session(session, name)),
        }
    }

    /// Runs `sql`, a lock statement (see [`holders::LOCK_PARAMS`]) for
    /// lock `id`, prepared once on `session`.
    async fn query_lock(
        &self,
        session: &Session,
        sql: &str,
        id: i32,
        name: &str,
    ) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
        let params: [&(dyn ToSql + Sync); 6] = [
            &self.tables.class_key(),
            &id,
            &session.backend_start,
            &self.tables.class,
            &name,
            &session.token,
        ];
        session.query_prepared(sql, &holders::LOCK_PARAMS, &params).await
    }

    /// The two advisory keys of lock `id`.
    fn keys(&self, id: i32) -> (i32, i32) {
        (self.tables.class_key(), id)
    }

    /// Waits for `name` until had or cancelled. The server going out of
    /// reach — restarted, the connection cut — does not end the wait: it
    /// starts over on a new session, after a pause that grows to
    /// [`RETRY_AT_MOST`], until had or cancelled (a timeout cancels).
    async fn lock(
        self: Arc<Self>,
        name: String,
        shared: bool,
        cancel: WaitCancel,
    ) -> Result<u64, ServerError> {
        let mut pause = RETRY_FIRST;
        lock(&self.trouble).remove(&name);
        loop {
            match self.clone().lock_once(name.clone(), shared, cancel.clone()).await {
                Err(e) if e.is_unavailable() && !cancel.is_cancelled() => {
                    log::warn!("{e}; waiting for lock {name:?} again in {pause:?}");
                    lock(&self.trouble).insert(name.clone(), e.to_string());
                    if !cancel.sleep(pause).await {
                        return Err(self.cancelled(&name));
                    }
                    pause = (pause * 2).min(RETRY_AT_MOST);
                }
                Ok(fence) => {
                    lock(&self.trouble).remove(&name);
                    return Ok(fence);
                }
                // A cancel (a timeout) keeps the trouble for its error.
                failed => return failed,
            }
        }
    }

    /// One attempt of [`lock`](Self::lock), on the sessions as they are.
    async fn lock_once(
        self: Arc<Self>,
        name: String,
        shared: bool,
        cancel: WaitCancel,
    ) -> Result<u64, ServerError> {
        // Called once a try found the lock taken, or the server out of
        // reach: no try first, which would only cost a round trip.
        if cancel.is_cancelled() {
            return Err(self.cancelled(&name));
        }
        let reservation = self.reserve(&name)?;
        // Connecting may take up to its timeout: a cancel stops it too.
        let ready = async {
            Ok::<_, ServerError>((self.name_id(&name).await?, self.waiting_session().await?))
        };
        let Some(ready) = cancel.unless_cancelled(ready).await else {
            return Err(self.cancelled(&name));
        };
        let (id, session) = ready?;
        lock(&self.trouble).remove(&name); // the server is in reach again
        let function = if shared { "pg_advisory_lock_shared" } else { "pg_advisory_lock" };
        // `void` as text is '': true once locked, NULL on a session not ours.
        let sql = guarded(&format!("{function}($1, $2)::text = ''"));
        // A session that a cancel request was sent to is never waited on
        // again: a request still on its way would cancel whatever query
        // runs there next (another wait, a grant, a release). It is
        // closed instead, which also ends anything it held.
        let waited = {
            let _armed = cancel.arm(&session, self.tls.clone());
            if cancel.is_cancelled() {
                return Err(self.cancelled(&name));
            }
            let _waiting = session.waiting();
            let keys = self.keys(id);
            session.client.query_typed_one(&sql, &typed(&keys, &session.token)).await
        };
        match waited {
            // Cancelled by the server, or its connection closed by the
            // canceller as it stayed silent.
            Err(_) if cancel.is_cancelled() => Err(self.cancelled(&name)),
            Err(e) => Err(self.query_error("acquire", &name, &e)),
            Ok(_) if cancel.is_cancelled() => {
                // Had just as the cancel came: give it back (closing the
                // session does, should a late cancel request stop this).
                if let Err(e) = self.release(&session, &name, id, shared).await {
                    log::debug!("{e}; the session is closed instead");
                }
                Err(self.cancelled(&name))
            }
            Ok(_) => {
                let fence = self.granted(&session, &name, id, shared).await?;
                reservation.hold(Hold { session, id, shared, own_session: true });
                Ok(fence)
            }
        }
    }

    /// After the advisory lock is granted: bumps and commits the fence
    /// (for shared grants too), and records the hold. On failure the lock
    /// is released again.
    async fn granted(
        &self,
        session: &Arc<Session>,
        name: &str,
        id: i32,
        shared: bool,
    ) -> Result<u64, ServerError> {
        let sql = self.statements.granted();
        let fence = match self.query_lock(session, sql, id, name).await {
            Ok(row) => self.fence_of(name, row.get(0)),
            Err(e) => Err(self.query_error("acquire", name, &e)),
        };
        match fence {
            Ok(fence) => Ok(fence),
            Err(error) => {
                if let Err(e) = self.release(session, name, id, shared).await {
                    log::warn!("{e}; closing the session instead");
                    session.abandon();
                }
                Err(error)
            }
        }
    }

    /// Unlocks on `session` and forgets the hold's record, in one
    /// statement; should that fail, unlocks alone (the record of a session
    /// that no longer holds the lock is ignored anyway).
    async fn release(
        &self,
        session: &Arc<Session>,
        name: &str,
        id: i32,
        shared: bool,
    ) -> Result<(), ServerError> {
        let sql = self.statements.release(shared);
        let released: bool = match self.query_lock(session, sql, id, name).await {
            Ok(row) => row.get(0),
            Err(e) if e.is_closed() => return Err(self.query_error("release", name, &e)),
            Err(e) => {
                log::debug!(
                    "lock server {}: holder record of {name:?} stays: {}",
                    self.server,
                    reason(&e)
                );
                return self.unlock_only(session, name, id, shared).await;
            }
        };
        if !released {
            log::warn!("lock server {}: lock {name:?} was not held by its session", self.server);
        }
        Ok(())
    }

    /// The advisory unlock alone.
    async fn unlock_only(
        &self,
        session: &Session,
        name: &str,
        id: i32,
        shared: bool,
    ) -> Result<(), ServerError> {
        let function = if shared { "pg_advisory_unlock_shared" } else { "pg_advisory_unlock" };
        let sql = format!("SELECT {function}($1, $2)");
        let keys = self.keys(id);
        let params: [(&(dyn ToSql + Sync), Type); 2] =
            [(&keys.0, Type::INT4), (&keys.1, Type::INT4)];
        let row = session.client.query_typed_one(&sql, &params).await;
        row.map(drop).map_err(|e| self.query_error("release", name, &e))
    }

    async fn unlock(self: Arc<Self>, name: String) -> Result<(), ServerError> {
        let Some(hold) = self.held(&name) else {
            return Err(self.error("release", &name, "not held by this process".into()));
        };
        lock(&self.holds).remove(&name);
        if hold.session.is_lost() {
            log::warn!("lock server {}: lock {name:?} was lost with its session", self.server);
            return Ok(());
        }
        let released = self.release(&hold.session, &name, hold.id, hold.shared).await;
        match &released {
            Ok(()) if hold.own_session => self.return_waiting_session(hold.session),
            Ok(()) => {}
            // It may still hold the lock: closing it lets go for sure.
            Err(_) => hold.session.abandon(),
        }
        released
    }

    #[cfg_attr(not(all(test, unix)), allow(dead_code))]
    async fn fence(self: Arc<Self>, name: String) -> Result<u64, ServerError> {
        schema::check_name(&name)?;
        let session = self.main_session().await?;
        let sql = format!("SELECT fence FROM {} WHERE name = $1", self.tables.names);
        let row = session.client.query_opt(&sql, &[&name]).await;
        let fence: Option<i64> =
            row.map_err(|e| self.query_error("fence", &name, &e))?.map(|r| r.get(0));
        Ok(fence.and_then(|f| u64::try_from(f).ok()).unwrap_or(0))
    }

    async fn holders(self: Arc<Self>, name: String) -> Result<Vec<ServerHolder>, ServerError> {
        schema::check_name(&name)?;
        let session = self.main_session().await?;
        holders::query(&session.client, &self.tables, &name)
            .await
            .map_err(|e| self.query_error("holders", &name, &e))
    }

    async fn record_holder(
        self: Arc<Self>,
        name: String,
        label: String,
    ) -> Result<(), ServerError> {
        let Some(hold) = self.held(&name) else {
            return Err(self.error("label", &name, "not held by this process".into()));
        };
        let sql = format!(
            "UPDATE {} SET label = $2 WHERE pid = pg_backend_pid() AND lock_id = $1",
            self.tables.holds
        );
        let done = hold.session.client.execute(&sql, &[&hold.id, &label]).await;
        done.map(drop).map_err(|e| self.query_error("label", &name, &e))
    }

    async fn is_current(self: Arc<Self>, name: String) -> Result<Option<bool>, ServerError> {
        let Some(hold) = self.held(&name) else { return Ok(None) };
        if hold.session.is_lost() {
            return Ok(Some(false));
        }
        let session = &hold.session;
        match holders::holds_now(&session.client, &self.tables, hold.id, &session.token).await {
            Ok(held) => Ok(Some(held)),
            Err(e) if e.is_closed() || hold.session.is_lost() => Ok(Some(false)),
            Err(e) => Err(self.query_error("check", &name, &e)),
        }
    }
}
