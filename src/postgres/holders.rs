//! Who holds a server lock: the server's `pg_locks`, joined with
//! `pg_stat_activity` (client address, session start) and with the holds
//! table (full label, since when).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::SystemTime;

use tokio_postgres::Client;

use super::schema::Tables;
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

/// After a grant: the fence statement, which also records the hold. One
/// autocommitted statement, so the new fence is committed before the
/// acquire returns it.
pub(crate) fn granted_sql(tables: &Tables, shared: bool) -> String {
    let Tables { names, holds, .. } = tables;
    let fence = if shared {
        format!("SELECT fence FROM {names} WHERE id = $1")
    } else {
        format!("UPDATE {names} SET fence = fence + 1 WHERE id = $1 RETURNING fence")
    };
    format!(
        "WITH f AS ({fence}),
              h AS (INSERT INTO {holds} (pid, lock_id, backend_start, since)
                    SELECT pid, $1, backend_start, now() FROM pg_stat_activity
                    WHERE pid = pg_backend_pid()
                    ON CONFLICT (pid, lock_id) DO UPDATE
                    SET backend_start = EXCLUDED.backend_start, since = EXCLUDED.since,
                        label = NULL)
         SELECT fence FROM f"
    )
}

/// Whether the calling session holds the lock `id` right now.
pub(crate) async fn holds_now(
    client: &Client,
    tables: &Tables,
    id: i32,
) -> Result<bool, tokio_postgres::Error> {
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
               AND pid = pg_backend_pid() AND classid = $1 AND objid = $2 AND objsubid = 2 \
               AND granted)";
    let objid = u32::try_from(id).unwrap_or_default();
    Ok(client.query_one(sql, &[&tables.class, &objid]).await?.get(0))
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
