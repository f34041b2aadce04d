//! The baselines' side of the server rows: one `tokio-postgres` connection
//! driven by a small runtime of its own, with the statements a fenced lock
//! needs prepared once, run by hand.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// One session on the server, with the lock statements for one name.
pub struct RawSession {
    runtime: Runtime,
    client: Client,
    /// The name's advisory keys: the names table's OID and the name's id,
    /// the keys packlock uses, so the two contend for the same lock.
    class: u32,
    id: i32,
    try_lock: Statement,
    lock: Statement,
    bump: Statement,
    unlock: Statement,
}

impl RawSession {
    /// Connects with `conn` and finds (inserting it if needed) the row of
    /// `name` in the names table a `LockServer` created.
    pub fn connect(conn: &str, name: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(conn, NoTls).await.expect("connect");
            tokio::spawn(connection);
            client
        });
        let (class, id) = runtime.block_on(async {
            let insert = "INSERT INTO packlock.names (name) VALUES ($1) ON CONFLICT DO NOTHING";
            client.execute(insert, &[&name]).await.expect("insert name");
            let row = client
                .query_one(
                    "SELECT 'packlock.names'::regclass::oid, id FROM packlock.names \
                     WHERE name = $1",
                    &[&name],
                )
                .await
                .expect("keys");
            (row.get::<_, u32>(0), row.get::<_, i32>(1))
        });
        let prepare = |sql: &str| runtime.block_on(client.prepare(sql)).expect("prepare");
        let try_lock = prepare("SELECT pg_try_advisory_lock($1, $2)");
        let lock = prepare("SELECT pg_advisory_lock($1, $2)");
        let bump =
            prepare("UPDATE packlock.names SET fence = fence + 1 WHERE id = $1 RETURNING fence");
        let unlock = prepare("SELECT pg_advisory_unlock($1, $2)");
        RawSession { runtime, client, class, id, try_lock, lock, bump, unlock }
    }

    fn class_key(&self) -> i32 {
        i32::from_ne_bytes(self.class.to_ne_bytes())
    }

    /// `pg_try_advisory_lock`: whether it got the lock.
    pub fn try_lock(&self) -> bool {
        self.run(&self.try_lock, &[&self.class_key(), &self.id]).get(0)
    }

    /// `pg_advisory_lock`: waits on the server until granted.
    pub fn lock(&self) {
        self.run(&self.lock, &[&self.class_key(), &self.id]);
    }

    /// The fence bump an exclusive grant needs (autocommitted).
    pub fn bump(&self) -> i64 {
        self.run(&self.bump, &[&self.id]).get(0)
    }

    pub fn unlock(&self) {
        let released: bool = self.run(&self.unlock, &[&self.class_key(), &self.id]).get(0);
        assert!(released, "was not held");
    }

    fn run(&self, statement: &Statement, params: &[&(dyn ToSql + Sync)]) -> Row {
        self.runtime.block_on(self.client.query_one(statement, params)).expect("query")
    }

    /// Sessions waiting on the server for this lock (from `pg_locks`).
    pub fn waiters(&self) -> i64 {
        let sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                   AND classid = $1 AND objid = $2 AND objsubid = 2";
        let objid = u32::try_from(self.id).expect("positive id");
        let row = self.runtime.block_on(self.client.query_one(sql, &[&self.class, &objid]));
        row.expect("pg_locks").get(0)
    }

    /// Polls [`waiters`](Self::waiters) until one session waits.
    pub fn wait_until_waiting(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.waiters() == 0 {
            assert!(Instant::now() < deadline, "no waiter showed up in pg_locks");
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// The backend pids of sessions whose `application_name` is `app`.
    pub fn pids_of(&self, app: &str) -> Vec<i32> {
        let sql = "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid";
        let rows = self.runtime.block_on(self.client.query(sql, &[&app])).expect("activity");
        rows.iter().map(|row| row.get(0)).collect()
    }
}
