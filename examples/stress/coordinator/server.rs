//! Server mode: the lock server the workers use (a throwaway cluster, or
//! one given by its connection string), the proxy they reach it through,
//! what the chaos does to their sessions, and the leak check.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

use packlock::PackLockError;
use packlock::postgres::LockServer;

use super::chaos::Chaos;
use super::leaks::Leaks;
use super::proxy::Proxy;
use crate::layout::Layout;
use crate::rng::Rng;

// The tests' throwaway cluster: initdb + pg_ctl in a temporary directory,
// run as the `postgres` user when root, stopped when dropped.
#[path = "../../../tests/common/pg.rs"]
mod pg;

/// One disturbance in this many terminates a backend rather than cutting
/// a connection.
const TERMINATE_ONE_IN: u64 = 10;
/// How long locks may take to come free once every worker is idle.
const GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(10);

pub struct Server {
    /// Kept for its `Drop`, which stops the throwaway cluster.
    _cluster: Option<pg::PgCluster>,
    /// How the coordinator reaches the server: directly.
    direct: String,
    /// How the workers reach it: through the proxy, with an
    /// `application_name` of this run.
    worker_conn: String,
    application_name: String,
    proxy: Proxy,
    /// The coordinator's own connection (it also makes the lock tables
    /// before the workers start, so that they do not race to).
    locks: LockServer,
    description: String,
}

impl Server {
    /// Starts a throwaway cluster (`conn` `None`) or uses the server of
    /// `conn`, a keyword connection string; starts the proxy.
    pub fn start(conn: Option<&str>) -> Result<Server, String> {
        let (cluster, direct, description) = match conn {
            Some(conn) => (None, conn.to_string(), "given server".to_string()),
            None => {
                let cluster = pg::PgCluster::start().ok_or(
                    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them \
                     (apt-get install postgresql), or pass --postgres CONN",
                )?;
                let direct = cluster.admin();
                (Some(cluster), direct, "throwaway cluster".to_string())
            }
        };
        let (upstream, kept) = split_address(&direct)?;
        let proxy = Proxy::start(upstream).map_err(|e| format!("cannot start the proxy: {e}"))?;
        let application_name = format!("packlock-stress-{}", std::process::id());
        let worker_conn = format!(
            "{} host=127.0.0.1 port={} application_name={application_name}",
            kept.join(" "),
            proxy.port()
        );
        let locks = LockServer::connect(&direct).map_err(|e| e.to_string())?;
        let description = format!("{description} {upstream}, proxy port {}", proxy.port());
        Ok(Server {
            _cluster: cluster,
            direct,
            worker_conn,
            application_name,
            proxy,
            locks,
            description,
        })
    }

    pub fn worker_conn(&self) -> &str {
        &self.worker_conn
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    pub fn connections(&self) -> u64 {
        self.proxy.accepted()
    }

    /// Cuts a random connection through the proxy, or now and then
    /// terminates a random worker backend (`pg_terminate_backend`).
    pub fn disturb(&self, rng: &mut Rng, chaos: &mut Chaos) {
        if rng.below(TERMINATE_ONE_IN) == 0 {
            let sql = format!(
                "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity \
                 WHERE application_name = '{}' ORDER BY random() LIMIT 1) AS victim",
                self.application_name
            );
            match self.psql(&sql) {
                Ok(done) if done == "1" => chaos.terminations += 1,
                Ok(_) => chaos.missed += 1,
                Err(e) => eprintln!("stress: cannot terminate a backend: {e}"),
            }
        } else if self.proxy.cut_one(|n| rng.index(n)) {
            chaos.cuts += 1;
        } else {
            chaos.missed += 1;
        }
    }

    /// With every worker idle: each name must be free for a fresh
    /// exclusive `try_acquire`, and no worker session may hold or wait
    /// for any advisory lock, within the grace time.
    pub fn leaks(&self, layout: &Layout, names: usize) -> Leaks {
        let deadline = Instant::now() + GRACE;
        let busy_files = (0..names).filter(|&name| !self.wait_free(layout, name, deadline));
        let busy_files = busy_files.collect();
        let sql = format!(
            "SELECT l.pid || ' ' || l.mode || ' granted=' || l.granted FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND a.application_name = '{}'",
            self.application_name
        );
        let server_locks = loop {
            let left = match self.psql(&sql) {
                Ok(out) => out.lines().map(|line| format!("server lock {line}")).collect(),
                Err(e) => vec![format!("cannot list the server's locks: {e}")],
            };
            if left.is_empty() || Instant::now() >= deadline {
                break left;
            }
            std::thread::sleep(POLL);
        };
        Leaks { busy_files, server_locks, ..Leaks::default() }
    }

    fn wait_free(&self, layout: &Layout, name: usize, deadline: Instant) -> bool {
        let lock = match self.locks.lock(&layout.lock_name(name)).open() {
            Ok(lock) => lock,
            Err(e) => {
                eprintln!("stress: leak check: {e}");
                return false;
            }
        };
        loop {
            match lock.try_acquire() {
                Ok(hold) => match hold.release() {
                    Ok(()) => return true,
                    Err(e) => eprintln!("stress: leak check: {e}"),
                },
                Err(PackLockError::Busy { .. }) => {}
                Err(e) => eprintln!("stress: leak check: {e}"),
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Runs `sql` with psql on the direct connection; its output.
    fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-d", &self.direct, "-X", "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// The server's address from a keyword connection string, and its other
/// `key=value` pairs (the proxy's host and port, and the run's
/// `application_name`, replace `host`, `hostaddr`, `port` and
/// `application_name`).
fn split_address(conn: &str) -> Result<(SocketAddr, Vec<String>), String> {
    if conn.contains("://") {
        return Err(format!(
            "--postgres takes a keyword connection string (host=... port=... user=...), \
             not a URL: {conn:?}"
        ));
    }
    let (mut host, mut port) = (None, None);
    let mut kept = Vec::new();
    for pair in conn.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("not key=value: {pair:?} in the connection string"));
        };
        match key {
            "host" | "hostaddr" => host = value.split(',').next().map(str::to_string),
            "port" => port = Some(value.to_string()),
            "application_name" => {}
            _ => kept.push(pair.to_string()),
        }
    }
    let host = host.unwrap_or_else(|| "localhost".to_string());
    if host.starts_with('/') {
        return Err(format!("host={host} is a Unix socket; the proxy needs TCP"));
    }
    let port: u16 = match port {
        Some(port) => port.parse().map_err(|_| format!("port={port} is not a port"))?,
        None => 5432,
    };
    let address = (host.as_str(), port).to_socket_addrs().ok().and_then(|mut a| a.next());
    let address = address.ok_or_else(|| format!("cannot resolve {host}:{port}"))?;
    Ok((address, kept))
}
