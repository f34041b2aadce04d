//! One session (connection) to the server. Session-level advisory locks
//! belong to it: they end when it ends, so it watches its connection and
//! records the moment it is lost — closed by the server (restart,
//! shutdown, `pg_terminate_backend`), failed at the socket, or silent past
//! the heartbeat's patience.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tokio::task::AbortHandle;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{CancelToken, Client, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::ServerConfig;
use super::error::{ServerError, reason};
use crate::backend::LostSignal;

/// How long connecting may take, unless the connection string sets
/// `connect_timeout`: a server behind a network that drops packets would
/// otherwise keep a reconnect waiting for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many unanswered keepalive probes either end waits for before it
/// gives the connection up.
const KEEPALIVE_PROBES: u32 = 3;

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client: Client,
    /// The server's backend pid for this session.
    pub(crate) pid: i32,
    /// When the server started this session's backend: with the pid, what
    /// tells a holder record of this session from one of an earlier
    /// session that had the same pid.
    pub(crate) backend_start: SystemTime,
    /// Set on the server session as `packlock.session` when it starts, and
    /// checked by every lock statement (see [`session_is_ours`]).
    pub(crate) token: String,
    /// How often the heartbeat pings this session.
    pub(crate) heartbeat: Duration,
    /// Statements prepared on this session, by their text: parsing and
    /// planning those of every acquire and release would cost the server
    /// more than running them.
    prepared: Mutex<HashMap<String, Statement>>,
    /// Set when the connection ends (by the task driving it) or stops
    /// answering (by the heartbeat).
    lost: Arc<LostSignal>,
    /// Whether a query that may block for long (a lock wait) is running:
    /// the heartbeat leaves the session alone meanwhile, as a ping would
    /// queue behind it.
    waiting: AtomicBool,
    /// The task driving the connection: aborting it closes the socket.
    connection: AbortHandle,
}

impl Session {
    /// Connects, and starts the tasks that drive the connection and ping
    /// it every `config.heartbeat` on the client thread (call from there).
    /// Both stop when the session is dropped or lost.
    pub(crate) async fn open(
        config: &ServerConfig,
        tls: &MakeRustlsConnect,
        server: &str,
    ) -> Result<Arc<Session>, ServerError> {
        let client_config = client_config(config);
        let failed = |e: tokio_postgres::Error| ServerError::connect(server, &e);
        let (client, connection) = client_config.connect(tls.clone()).await.map_err(failed)?;
        let lost = Arc::new(LostSignal::default());
        let watch = lost.clone();
        let name = server.to_string();
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("lock server {name}: session ended: {}", reason(&e));
            }
            watch.set();
        });
        let token = new_token();
        let (pid, backend_start, in_recovery, fresh) =
            start(&client, config.heartbeat, &token).await.map_err(failed)?;
        if !fresh {
            connection.abort();
            let reason = "the server session it got was used by another packlock client before: \
                          a pooler (PgBouncer's transaction or statement pooling, or session \
                          pooling without a reset query) hands server sessions around, and \
                          session locks need one of their own; connect to the server directly \
                          or through session pooling"
                .to_string();
            return Err(ServerError::Connect { server: server.to_string(), reason });
        }
        if in_recovery {
            connection.abort();
            let reason = "it is a hot standby (in recovery, read-only), which can take no lock: \
                          connect to the primary"
                .to_string();
            return Err(ServerError::Connect { server: server.to_string(), reason });
        }
        let session = Arc::new(Session {
            client,
            pid,
            backend_start,
            token,
            heartbeat: config.heartbeat,
            prepared: Mutex::default(),
            lost,
            waiting: AtomicBool::new(false),
            connection: connection.abort_handle(),
        });
        tokio::spawn(heartbeat(Arc::downgrade(&session), config.heartbeat, server.to_string()));
        Ok(session)
    }

    /// Whether the connection has ended: every lock it held is gone.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_set() || self.client.is_closed()
    }

    /// The signal set when the connection ends.
    pub(crate) fn lost_signal(&self) -> Arc<LostSignal> {
        Arc::clone(&self.lost)
    }

    pub(crate) fn cancel_token(&self) -> CancelToken {
        self.client.cancel_token()
    }

    /// Runs `sql`, with parameters of `types`, as a statement prepared on
    /// this session the first time.
    pub(crate) async fn query_prepared(
        &self,
        sql: &str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let cached = self.statements().get(sql).cloned();
        let statement = match cached {
            Some(statement) => statement,
            None => {
                let statement = self.client.prepare_typed(sql, types).await?;
                self.statements().insert(sql.to_string(), statement.clone());
                statement
            }
        };
        let row = self.client.query_one(&statement, params).await;
        if row.is_err() {
            // Prepared again next time, should the statement be at fault
            // (the lock tables made anew, say).
            self.statements().remove(sql);
        }
        row
    }

    fn statements(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a lock wait under way until the guard is dropped.
    pub(crate) fn waiting(&self) -> Waiting<'_> {
        self.waiting.store(true, Ordering::SeqCst);
        Waiting(self)
    }

    /// Gives the session up: its locks are gone for us, so they must be
    /// gone on the server too — closing the socket ends the session there
    /// as soon as the server hears of it.
    pub(crate) fn abandon(&self) {
        self.lost.set();
        self.connection.abort();
    }
}

/// While alive, the heartbeat skips its session ([`Session::waiting`]).
pub(crate) struct Waiting<'a>(&'a Session);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.store(false, Ordering::SeqCst);
    }
}

/// The client settings of every session: the connection string's, with
/// packlock's defaults where it says nothing. TCP keepalives and the user
/// timeout are paced by the heartbeat, so that a waiting session (which
/// the heartbeat leaves alone) on a dead network fails within about four
/// intervals rather than the system's default of hours.
fn client_config(config: &ServerConfig) -> tokio_postgres::Config {
    let mut client = config.client.clone();
    let every = config.heartbeat;
    if client.get_application_name().is_none() {
        client.application_name("packlock");
    }
    if client.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        client.keepalives_idle(every); // the client's default: too slow
    }
    if client.get_keepalives_interval().is_none() {
        client.keepalives_interval(every);
    }
    if client.get_keepalives_retries().is_none() {
        client.keepalives_retries(KEEPALIVE_PROBES);
    }
    if client.get_tcp_user_timeout().is_none() {
        client.tcp_user_timeout(every * (KEEPALIVE_PROBES + 1));
    }
    if client.get_connect_timeout().is_none() {
        client.connect_timeout(CONNECT_TIMEOUT);
    }
    client
}

/// The session's first queries: its backend pid and start, and the
/// settings packlock's statements rely on, whatever the role's or the
/// database's defaults:
///
/// * `search_path` pinned to `pg_catalog` (then `pg_temp`), before
///   anything else runs: a role whose path puts a schema it can write
///   before `pg_catalog` could otherwise shadow `pg_try_advisory_lock` or
///   an operator with a function of its own, and break exclusion. The
///   first statement names only a qualified function, so nothing in it can
///   be shadowed; the lock tables are always named with their schema;
/// * a server that is not in recovery: a hot standby takes no locks and
///   writes no fences (refused here, with a clear error, rather than at
///   every acquire);
/// * commits that are durable before they are acknowledged
///   (`synchronous_commit` is raised to `on` where it is `off`): a fence
///   acknowledged and then lost in a crash would let the next holder get a
///   smaller one;
/// * no `statement_timeout`, `lock_timeout`, `idle_session_timeout` or
///   `idle_in_transaction_session_timeout`: they would end a long wait for
///   a lock, or an idle session holding one;
/// * read committed statements, which the fence update folded into a
///   try-lock needs to see the last holder's fence;
/// * server-side TCP keepalives and user timeout paced by the heartbeat,
///   and (PostgreSQL 14 and later) a check of the client's socket during
///   a long query, so that the server frees the locks of a client host
///   that vanished (powered off, cut off) within about four intervals —
///   also when it was granted a lock it waited for — rather than the
///   system's default of hours. (Sessions on a Unix socket ignore the TCP
///   settings.)
async fn start(
    client: &Client,
    heartbeat: Duration,
    token: &str,
) -> Result<(i32, SystemTime, bool, bool), tokio_postgres::Error> {
    let seconds = heartbeat.as_secs().max(1).to_string();
    let millis = heartbeat.as_millis().to_string();
    let user_timeout = (heartbeat * (KEEPALIVE_PROBES + 1)).as_millis().to_string();
    let probes = KEEPALIVE_PROBES.to_string();
    client
        .simple_query("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)")
        .await?;
    let row = client
        .query_one(
            "SELECT pid, backend_start, pg_is_in_recovery(),
                    CASE WHEN coalesce(current_setting('packlock.session', true), '') = ''
                         THEN set_config('packlock.session', $5, false) END IS NOT NULL,
                    CASE WHEN current_setting('synchronous_commit') = 'off'
                         THEN set_config('synchronous_commit', 'on', false) END,
                    set_config('statement_timeout', '0', false),
                    set_config('lock_timeout', '0', false),
                    set_config('idle_in_transaction_session_timeout', '0', false),
                    set_config('default_transaction_isolation', 'read committed', false),
                    set_config('tcp_keepalives_idle', $1, false),
                    set_config('tcp_keepalives_interval', $1, false),
                    set_config('tcp_keepalives_count', $2, false),
                    CASE WHEN current_setting('server_version_num')::int >= 120000
                         THEN set_config('tcp_user_timeout', $3, false) END,
                    CASE WHEN current_setting('server_version_num')::int >= 140000
                         THEN set_config('idle_session_timeout', '0', false) END,
                    CASE WHEN current_setting('server_version_num')::int >= 140000
                         THEN set_config('client_connection_check_interval', $4, false) END
             FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[&seconds, &probes, &user_timeout, &millis, &token],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
}

/// The condition, in SQL, that the server session running a statement is
/// this session: its `packlock.session` is the token in `param` (the
/// statement's parameter holding [`Session::token`], such as `$3`).
/// Through a pooler that hands server sessions around per transaction, the
/// next statement may run on another client's server session — where an
/// advisory lock that client holds would be granted to us again — or on
/// one that never saw our token: every lock statement checks it, and takes
/// nothing when it fails.
pub(crate) fn session_is_ours(param: &str) -> String {
    format!("current_setting('packlock.session', true) = {param}")
}

/// A token that no other session of any process will have: this process,
/// the time, and a counter.
fn new_token() -> String {
    use std::sync::atomic::AtomicU64;
    static SESSIONS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let count = SESSIONS.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{count}", std::process::id(), nanos.as_nanos())
}

/// Pings the session every `every`; one ping unanswered for `every` (or
/// failed) gives the session up. So a silent connection — a network
/// partition, a frozen server — is found lost at most two intervals after
/// it went silent, where TCP alone could take minutes. Stops once the
/// session is dropped or lost.
async fn heartbeat(session: Weak<Session>, every: Duration, server: String) {
    loop {
        tokio::time::sleep(every).await;
        let Some(session) = session.upgrade() else { return };
        if session.is_lost() {
            return;
        }
        if session.waiting.load(Ordering::SeqCst) {
            continue;
        }
        match tokio::time::timeout(every, session.client.simple_query("")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                log::warn!("lock server {server}: session lost: {}", reason(&e));
                session.abandon();
                return;
            }
            Err(_) => {
                log::warn!("lock server {server}: session lost: no answer within {every:?}");
                session.abandon();
                return;
            }
        }
    }
}
