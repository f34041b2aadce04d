//! A throwaway PostgreSQL cluster for the `postgres` feature's tests, made
//! from the system's binaries (`initdb`, `pg_ctl`, `psql`): a temporary
//! data directory, a free port on 127.0.0.1, a Unix socket in the same
//! directory, and `pg_ctl stop -m immediate` on drop. When running as root
//! the server runs as the `postgres` user.
//!
//! Without the binaries a test prints a notice and is skipped — unless the
//! environment variable `CI` is set, where that is a failure.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The role with a password that password tests log in as.
pub const PASSWORD_ROLE: &str = "packs_pw";
pub const PASSWORD: &str = "s3cr3t-Pa55word";
/// A role that may log in but not create anything.
pub const UNPRIVILEGED_ROLE: &str = "packs_ro";

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

/// Where the PostgreSQL server binaries are, if anywhere.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let versioned = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"));
    on_path
        .chain(versioned)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl PgCluster {
    /// A running cluster, or `None` (after a notice) where PostgreSQL is
    /// not installed. Panics under `CI`, where the server must be there.
    pub fn start() -> Option<PgCluster> {
        PgCluster::start_with(&[], None)
    }

    /// As [`start`](Self::start), with `conf` lines added to
    /// postgresql.conf, and `hba` (pg_hba.conf lines) instead of the default.
    pub fn start_with(conf: &[&str], hba: Option<&str>) -> Option<PgCluster> {
        let Some(bin) = find_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL server binaries (initdb, pg_ctl) not found, and CI is set: \
                 install them (apt-get install postgresql)"
            );
            eprintln!("skipped: PostgreSQL server binaries (initdb, pg_ctl) not found");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("packlock-pg").tempdir().expect("temp dir");
        let cluster = PgCluster { dir, bin, port: 0, as_postgres: is_root() };
        if cluster.as_postgres {
            cluster.chown(cluster.dir.path());
        }
        cluster.run_ok(
            &cluster.tool("initdb"),
            &["-D", &cluster.data(), "-A", "trust", "-U", "postgres", "-N", "-E", "UTF8"],
        );
        let mut settings = String::from("\nfsync = off\nmax_connections = 200\n");
        for line in conf {
            settings.push_str(line);
            settings.push('\n');
        }
        append(&cluster.dir.path().join("data/postgresql.conf"), &settings);
        let default_hba = format!(
            "local all all trust\n\
             local replication all trust\n\
             host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n"
        );
        std::fs::write(cluster.dir.path().join("data/pg_hba.conf"), hba.unwrap_or(&default_hba))
            .expect("write pg_hba.conf");
        let mut cluster = cluster;
        cluster.start_server();
        cluster.psql(&format!(
            "CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}';
             CREATE ROLE {UNPRIVILEGED_ROLE} LOGIN;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
        ));
        Some(cluster)
    }

    /// Starts the server on a free port (another one if that was taken).
    fn start_server(&mut self) {
        for _ in 0..5 {
            self.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.path().display()
            );
            let log = self.dir.path().join("server.log").display().to_string();
            let started = self.run(
                &self.tool("pg_ctl"),
                &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"],
            );
            if started.status.success() {
                return;
            }
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        panic!("the PostgreSQL server did not start:\n{log}");
    }

    /// Stops the server at once (like a crash) and starts it again on the
    /// same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&self) {
        let port = self.port;
        let options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1", self.dir.path().display());
        let log = self.dir.path().join("server.log").display().to_string();
        self.run_ok(
            &self.tool("pg_ctl"),
            &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"],
        );
    }

    pub fn stop(&self) {
        let _ =
            self.run(&self.tool("pg_ctl"), &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    /// A keyword connection string for `user` over TCP.
    pub fn conn(&self, user: &str) -> String {
        conn_at(self.port, user)
    }

    /// Advisory locks waited for on the server, by anyone.
    pub fn advisory_waiters(&self) -> i64 {
        let sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
        self.psql(sql).parse().expect("a count")
    }

    /// The superuser's connection string.
    pub fn admin(&self) -> String {
        self.conn("postgres")
    }

    /// Runs `sql` as the superuser over the Unix socket; returns stdout.
    pub fn psql(&self, sql: &str) -> String {
        let socket = self.dir.path().display().to_string();
        let port = self.port.to_string();
        let out = self.run(
            &self.tool("psql"),
            &[
                "-h",
                &socket,
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-Atqc",
                sql,
            ],
        );
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A file in the cluster's directory, readable by the server.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        if self.as_postgres {
            self.chown(&path);
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        path
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A hot standby of this cluster (streaming from it), running on a
    /// port of its own: a read-only server in recovery.
    pub fn start_standby(&self) -> PgCluster {
        let dir = tempfile::Builder::new().prefix("packlock-pg-standby").tempdir().expect("dir");
        let mut standby =
            PgCluster { dir, bin: self.bin.clone(), port: 0, as_postgres: self.as_postgres };
        if standby.as_postgres {
            standby.chown(standby.dir.path());
        }
        let (socket, port) = (self.dir.path().display().to_string(), self.port.to_string());
        standby.run_ok(
            &standby.tool("pg_basebackup"),
            &["-D", &standby.data(), "-R", "-h", &socket, "-p", &port, "-U", "postgres"],
        );
        standby.start_server();
        standby
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn tool(&self, name: &str) -> PathBuf {
        let beside = self.bin.join(name);
        if beside.is_file() { beside } else { PathBuf::from(name) }
    }

    fn chown(&self, path: &Path) {
        let uid = id_of("-u");
        let gid = id_of("-g");
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }

    fn run(&self, tool: &Path, args: &[&str]) -> Output {
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        };
        command.args(args).current_dir("/").output().expect("run a PostgreSQL tool")
    }

    fn run_ok(&self, tool: &Path, args: &[&str]) {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            tool.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub(crate) fn id_of(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, "postgres"]).output().expect("id postgres");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("postgres user id")
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open conf");
    file.write_all(text.as_bytes()).expect("append conf");
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A keyword connection string for `user` to a server (or a proxy in
/// front of one) on `port` of 127.0.0.1.
pub fn conn_at(port: u16, user: &str) -> String {
    format!("host=127.0.0.1 port={port} user={user} dbname=postgres sslmode=disable")
}

/// Makes `path` the server's (when running as root), mode 0600: what
/// PostgreSQL demands of a TLS key.
pub fn give_to_server(path: &Path) {
    if is_root() {
        std::os::unix::fs::chown(path, Some(id_of("-u")), Some(id_of("-g"))).expect("chown");
    }
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
}
