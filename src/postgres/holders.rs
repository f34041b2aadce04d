//! Who holds a server lock: the server's `pg_locks`, joined with
//! `pg_stat_activity` (client address, session start) and with the holds
//! table (full label, since when).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::SystemTime;

use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use super::schema::Tables;
use super::session::session_is_ours;
use crate::Holder;

/// A holder of a server lock, as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerHolder {
    /// The holding session's backend pid on the server.
    pub(crate) backend_pid: i32,
    /// Whether it holds the lock shared.
    pub(crate) shared: bool,
    /// The client's address: `None` over a Unix socket, or when the role
    /// may not see other roles' sessions (it needs `pg_read_all_stats`).
    pub(crate) client_addr: Option<IpAddr>,
    /// The session's `application_name` (at most 63 bytes).
    pub(crate) application_name: Option<String>,
    /// The full label a packlock holder recorded.
    pub(crate) label: Option<String>,
    /// Since when a packlock holder holds the lock.
    pub(crate) since: Option<SystemTime>,
}

impl ServerHolder {
    /// As the crate's [`Holder`]: the pid is the backend's, the label names
    /// the client address when there is no label of its own.
    pub(crate) fn to_holder(&self) -> Holder {
        let label = match (&self.label, self.client_addr) {
            (Some(label), Some(addr)) => Some(format!("{label} from {addr}")),
            (Some(label), None) => Some(label.clone()),
            (None, Some(addr)) => Some(format!("server session from {addr}")),
            (None, None) => None,
        };
        Holder {
            pid: u32::try_from(self.backend_pid).unwrap_or_default(),
            shared: Some(self.shared),
            label,
            since: self.since,
        }
    }
}

/// The parameters of every statement below: `$1`, `$2` the advisory keys
/// (the lock table's OID and the lock's id), `$3` the session's backend
/// start (see [`Session::backend_start`](super::session::Session)).
pub(crate) const LOCK_PARAMS: [Type; 6] =
    [Type::INT4, Type::INT4, Type::TIMESTAMPTZ, Type::OID, Type::TEXT, Type::TEXT];

/// The fence bump's condition: the row of lock `$2`, and only if it is
/// still the row of the name `$5` in the table whose OID `$4` is the
/// first advisory key. Tables dropped and made anew would otherwise map a
/// process's cached id onto another name's row, under a key no other
/// process uses: two holders, and the other name's fence moved. No row
/// then: the acquire fails.
const SAME_ROW: &str = "id = $2 AND tableoid = $4 AND name = $5";

/// The text of the statements every acquire and release sends, made once
/// per server from its tables' names (each is then prepared once per
/// session).
#[derive(Debug)]
pub(crate) struct LockStatements {
    /// [`try_granted_sql`].
    pub(crate) try_exclusive: String,
    /// [`granted_sql`].
    granted: String,
    /// [`release_sql`], exclusive and shared.
    release: [String; 2],
}

impl LockStatements {
    pub(crate) fn new(tables: &Tables) -> Self {
        LockStatements {
            try_exclusive: try_granted_sql(tables),
            granted: granted_sql(tables),
            release: [release_sql(tables, false), release_sql(tables, true)],
        }
    }

    pub(crate) fn granted(&self) -> &str {
        &self.granted
    }

    pub(crate) fn release(&self, shared: bool) -> &str {
        &self.release[usize::from(shared)]
    }
}

/// After a grant: the fence statement, which also records the hold. One
/// autocommitted statement, so the new fence is committed before the
/// acquire returns it. Shared grants get a new fence too, larger than
/// every fence before (the row lock orders concurrent ones), so that a
/// reader's fence shuts out a writer that was there before it.
fn granted_sql(tables: &Tables) -> String {
    let Tables { names, holds, .. } = tables;
    let fence = format!("UPDATE {names} SET fence = fence + 1 WHERE {SAME_ROW} RETURNING fence");
    let record = record_sql(holds, "TRUE");
    format!("WITH f AS ({fence}), h AS ({record}) SELECT (SELECT fence FROM f)")
}

/// An exclusive try-lock and, if it got the lock, the fence bump and the
/// hold's record: [`granted_sql`] folded into the try, one round trip for
/// an uncontended acquire. The row is `(got, fence)`, the fence NULL when
/// not got; `got` is NULL when the statement ran on another server
/// session than ours (see [`session_is_ours`]): then nothing was
/// taken.
///
/// The lock is taken before the update runs (the update's condition reads
/// it), and an update waits for, then sees, a fence a previous holder
/// committed even after this statement began, so the fence still grows
/// from holder to holder.
fn try_granted_sql(tables: &Tables) -> String {
    let Tables { names, holds, .. } = tables;
    let ours = session_is_ours("$6");
    let got = "(SELECT got FROM l)";
    let record = record_sql(holds, got);
    format!(
        "WITH l AS (SELECT CASE WHEN {ours} THEN pg_try_advisory_lock($1, $2) END AS got),
              f AS (UPDATE {names} SET fence = fence + 1 WHERE {SAME_ROW} AND {got}
                    RETURNING fence),
              h AS ({record})
         SELECT got, (SELECT fence FROM f) FROM l"
    )
}

/// Records the calling session as a holder of the lock if `when` holds.
fn record_sql(holds: &str, when: &str) -> String {
    format!(
        "INSERT INTO {holds} (pid, lock_id, backend_start, since)
         SELECT pg_backend_pid(), $2, $3, now() WHERE {when}
         ON CONFLICT (pid, lock_id) DO UPDATE
         SET backend_start = EXCLUDED.backend_start, since = EXCLUDED.since, label = NULL"
    )
}

/// The release: the advisory unlock and the end of the hold's record in
/// one statement; the row says whether the session held the lock.
fn release_sql(tables: &Tables, shared: bool) -> String {
    let function = if shared { "pg_advisory_unlock_shared" } else { "pg_advisory_unlock" };
    format!(
        "WITH u AS (SELECT {function}($1, $2) AS released),
              d AS (DELETE FROM {} WHERE pid = pg_backend_pid() AND lock_id = $2)
         SELECT released FROM u",
        tables.holds
    )
}

/// Whether the calling session holds the lock `id` right now (and is
/// still ours: see [`session_is_ours`]).
pub(crate) async fn holds_now(
    client: &Client,
    tables: &Tables,
    id: i32,
    token: &str,
) -> Result<bool, tokio_postgres::Error> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
         AND pid = pg_backend_pid() AND classid = $1 AND objid = $2 AND objsubid = 2 \
         AND granted) AND coalesce({}, false)",
        session_is_ours("$3")
    );
    let objid = u32::try_from(id).unwrap_or_default();
    let params: [(&(dyn ToSql + Sync), Type); 3] =
        [(&tables.class, Type::OID), (&objid, Type::OID), (&token, Type::TEXT)];
    Ok(client.query_typed_one(&sql, &params).await?.get(0))
}

/// The holders of `name`.
pub(crate) async fn query(
    client: &Client,
    tables: &Tables,
    name: &str,
) -> Result<Vec<ServerHolder>, tokio_postgres::Error> {
    let Tables { names, holds, class, .. } = tables;
    let sql = format!(
        "SELECT l.pid, l.mode = 'ShareLock', host(a.client_addr), a.application_name,
                h.label, h.since
         FROM {names} n
         JOIN pg_locks l ON l.locktype = 'advisory' AND l.classid = $1
              AND l.objid = n.id::bigint::oid AND l.objsubid = 2 AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         LEFT JOIN {holds} h ON h.pid = l.pid AND h.lock_id = n.id
              AND h.backend_start IS NOT DISTINCT FROM a.backend_start
         WHERE n.name = $2
         ORDER BY l.pid"
    );
    let rows = client.query(&sql, &[class, &name]).await?;
    Ok(rows
        .iter()
        .map(|row| ServerHolder {
            backend_pid: row.get(0),
            shared: row.get(1),
            client_addr: row.get::<_, Option<String>>(2).and_then(|a| IpAddr::from_str(&a).ok()),
            application_name: row.get(3),
            label: row.get(4),
            since: row.get(5),
        })
        .collect())
}
