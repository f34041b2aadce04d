//! A PgBouncer in front of a throwaway cluster, in the pool mode a test
//! asks for (Debian's `pgbouncer` package, which CI installs).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::pg::{PgCluster, conn_at, free_port, id_of, is_root};

/// A running PgBouncer; stopped when dropped.
pub struct PgBouncer {
    process: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer in `pool_mode` with `pool_size` server sessions
    /// per user and database (handed out in turn, so that clients of a
    /// transaction pool mix them up), in front of `cluster`; `None` (after a
    /// notice) where it is not installed, except under `CI`.
    pub fn start(cluster: &PgCluster, pool_mode: &str, pool_size: usize) -> Option<PgBouncer> {
        let Some(binary) = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|path| Path::new(path).is_file())
        else {
            assert!(std::env::var_os("CI").is_none(), "pgbouncer is not installed, and CI is set");
            eprintln!("skipped: pgbouncer not installed (apt-get install pgbouncer)");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("packlock-pgbouncer").tempdir().expect("dir");
        let port = free_port();
        let at = dir.path().display();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").expect("users");
        let ini = format!(
            "[databases]\n\
             postgres = host=127.0.0.1 port={} dbname=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {at}/users.txt\n\
             pool_mode = {pool_mode}\n\
             default_pool_size = {pool_size}\n\
             server_round_robin = 1\n\
             max_client_conn = 100\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {at}/pgbouncer.log\n",
            cluster.port()
        );
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(&config, ini).expect("write pgbouncer.ini");
        let mut command = Command::new(binary);
        if is_root() {
            // PgBouncer will not run as root: it becomes `postgres` itself
            // (so that killing this process stops it).
            for path in [dir.path(), &config, &dir.path().join("users.txt")] {
                std::os::unix::fs::chown(path, Some(id_of("-u")), Some(id_of("-g")))
                    .expect("chown to postgres");
            }
            command.args(["-u", "postgres"]);
        }
        let process = command
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = PgBouncer { process, port, _dir: dir };
        super::wait_until("pgbouncer listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(bouncer)
    }

    /// The superuser's connection string through PgBouncer.
    pub fn conn(&self) -> String {
        conn_at(self.port, "postgres")
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
