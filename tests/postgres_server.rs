//! `packlock::postgres::LockServer` against a throwaway PostgreSQL cluster
//! (tests/common/pg.rs): connecting, its errors, the schema, and TLS.
//! Skipped with a notice where PostgreSQL is not installed, except under
//! `CI`.

#![cfg(all(feature = "postgres", unix))] // the throwaway server is started the Unix way

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use common::pg::{self, PASSWORD, PASSWORD_ROLE, PgCluster, UNPRIVILEGED_ROLE};
use packlock::postgres::{LockServer, ServerError};

fn server_name(cluster: &PgCluster, user: &str) -> String {
    format!("127.0.0.1:{}/postgres as {user}", cluster.port)
}

#[test]
fn connects_with_a_keyword_string_and_a_url() {
    let Some(cluster) = PgCluster::start() else { return };
    let keywords = LockServer::connect(&cluster.admin()).expect("keyword string");
    assert_eq!(keywords.to_string(), server_name(&cluster, "postgres"));
    assert_eq!(keywords.schema(), "packlock");
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable", cluster.port);
    let by_url = LockServer::connect(&url).expect("URL");
    assert_eq!(by_url.to_string(), keywords.to_string());
    let by_async = futures_lite::future::block_on(LockServer::connect_async(&url)).expect("async");
    assert_eq!(by_async.to_string(), keywords.to_string());
}

#[test]
fn a_password_login_works_and_the_password_never_shows() {
    let Some(cluster) = PgCluster::start() else { return };
    let url = format!(
        "postgresql://{PASSWORD_ROLE}:{PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port
    );
    let builder = LockServer::builder(&url).schema("pw");
    assert!(!format!("{builder:?}").contains(PASSWORD), "{builder:?}");
    // The role may not create a schema: an administrator makes it its own.
    cluster.psql(&format!("CREATE SCHEMA pw AUTHORIZATION {PASSWORD_ROLE}"));
    let server = builder.connect().expect("password login");
    for shown in [server.to_string(), format!("{server:?}")] {
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(shown.contains(&format!("127.0.0.1:{}", cluster.port)), "{shown}");
    }
}

#[test]
fn a_wrong_password_is_a_clear_error_without_the_password() {
    let Some(cluster) = PgCluster::start() else { return };
    let conn = format!("{} password='wrong-{PASSWORD}'", cluster.conn(PASSWORD_ROLE));
    let err = LockServer::connect(&conn).unwrap_err();
    assert!(matches!(err, ServerError::Connect { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&server_name(&cluster, PASSWORD_ROLE)), "{message}");
    assert!(message.contains("password authentication failed"), "{message}");
    assert!(!message.contains(PASSWORD) && !format!("{err:?}").contains(PASSWORD), "{message}");
}

#[test]
fn an_unreachable_server_fails_fast_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    // Nothing listens there once the listener is gone.
    let conn = format!(
        "host=127.0.0.1 port={port} user=packs password=hunter2 dbname=locks sslmode=disable"
    );
    let started = std::time::Instant::now();
    let err = LockServer::connect(&conn).unwrap_err();
    assert!(started.elapsed() < common::DEADLINE);
    let message = err.to_string();
    assert!(matches!(err, ServerError::Unavailable { .. }), "{err:?}");
    assert!(message.contains(&format!("127.0.0.1:{port}/locks as packs")), "{message}");
    assert!(!message.contains("hunter2") && !format!("{err:?}").contains("hunter2"), "{message}");
}

#[test]
fn a_typo_in_the_connection_string_is_named() {
    let err = LockServer::connect("hots=db.internal user=packs password=hunter2").unwrap_err();
    assert!(matches!(err, ServerError::InvalidConnectionString { .. }), "{err:?}");
    assert!(err.to_string().contains("`hots`"), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    let err = LockServer::connect("postgresql://packs:hunter2@db/locks?sslmode=verify-everything")
        .unwrap_err();
    assert!(err.to_string().contains("sslmode"), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
}

#[test]
fn missing_privileges_are_reported_with_the_schema() {
    let Some(cluster) = PgCluster::start() else { return };
    let err = LockServer::connect(&cluster.conn(UNPRIVILEGED_ROLE)).unwrap_err();
    assert!(matches!(err, ServerError::Schema { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&server_name(&cluster, UNPRIVILEGED_ROLE)), "{message}");
    assert!(message.contains("`packlock`") && message.contains("permission denied"), "{message}");
    // Tables an administrator made and granted are enough.
    LockServer::connect(&cluster.admin()).expect("the superuser creates them");
    cluster.psql(&format!(
        "GRANT USAGE ON SCHEMA packlock TO {UNPRIVILEGED_ROLE};
         GRANT SELECT, INSERT, UPDATE ON packlock.names TO {UNPRIVILEGED_ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON packlock.holds TO {UNPRIVILEGED_ROLE};"
    ));
    LockServer::connect(&cluster.conn(UNPRIVILEGED_ROLE)).expect("granted use");
}

#[test]
fn bad_schema_names_are_refused() {
    for schema in ["", "a\0b"] {
        let err = LockServer::builder("host=h user=u").schema(schema).connect().unwrap_err();
        assert!(matches!(err, ServerError::InvalidSchema { .. }), "{err:?}");
    }
}

#[test]
fn many_connections_create_the_schema_at_once() {
    let Some(cluster) = PgCluster::start() else { return };
    for round in 0..3 {
        let schema = format!("race{round}");
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (conn, schema, barrier) = (cluster.admin(), schema.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    LockServer::builder(&conn).schema(&schema).connect().map(drop)
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread").expect("concurrent creation never fails");
        }
    }
}

// TLS: a CA and a server certificate it signs, made with openssl(1).

struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn make_certs() -> Option<Certs> {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "openssl(1) is needed for the TLS tests");
        eprintln!("skipped: no openssl command to make test certificates");
        return None;
    }
    let dir = common::temp_dir();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let d = dir.path();
    for ca in ["ca", "other-ca"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=packlock test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ],
        );
    }
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
    std::fs::set_permissions(
        d.join("server.crt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    pg::give_to_server(&d.join("server.key"));
    Some(Certs {
        ca: d.join("ca.crt"),
        other_ca: d.join("other-ca.crt"),
        cert: d.join("server.crt"),
        key: d.join("server.key"),
        _dir: dir,
    })
}

fn tls_cluster(certs: &Certs) -> Option<PgCluster> {
    let conf = [
        "ssl = on".to_string(),
        format!("ssl_cert_file = '{}'", certs.cert.display()),
        format!("ssl_key_file = '{}'", certs.key.display()),
    ];
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    // Only TLS over TCP: a plain connection is refused.
    PgCluster::start_with(&conf, Some("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"))
}

#[test]
fn tls_require_and_verify_full() {
    let Some(certs) = make_certs() else { return };
    let Some(cluster) = tls_cluster(&certs) else { return };
    let base = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", cluster.port);

    let plain = LockServer::connect(&format!("{base} sslmode=disable")).unwrap_err();
    assert!(plain.to_string().contains("no encryption"), "the server wants TLS: {plain}");

    LockServer::connect(&format!("{base} sslmode=require")).expect("require: any certificate");
    LockServer::connect(&format!("{base} sslmode=prefer")).expect("prefer");
    let verify = |mode: &str, ca: &Path| {
        LockServer::connect(&format!("{base} sslmode={mode} sslrootcert='{}'", ca.display()))
    };
    verify("verify-full", &certs.ca).expect("verify-full with the CA");
    verify("verify-ca", &certs.ca).expect("verify-ca with the CA");
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port,
        certs.ca.display()
    );
    LockServer::connect(&url).expect("verify-full from a URL");

    let err = verify("verify-full", &certs.other_ca).unwrap_err();
    assert!(matches!(err, ServerError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&server_name(&cluster, "postgres")), "{err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    // A name the certificate does not carry: verify-ca accepts, verify-full refuses.
    let by_other_name = format!(
        "hostaddr=127.0.0.1 host=db.example port={} user=postgres dbname=postgres",
        cluster.port
    );
    let ca = certs.ca.display();
    LockServer::connect(&format!("{by_other_name} sslmode=verify-ca sslrootcert='{ca}'"))
        .expect("verify-ca ignores the name");
    let err =
        LockServer::connect(&format!("{by_other_name} sslmode=verify-full sslrootcert='{ca}'"))
            .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

/// A host name that does not resolve (a DNS outage looks the same) is out
/// of reach, not a refusal: waits ride it out like any outage.
#[test]
fn a_name_that_does_not_resolve_is_unavailable() {
    let conn = "host=no-such-host.invalid port=5432 user=packs dbname=locks sslmode=disable";
    let err = LockServer::connect(conn).unwrap_err();
    assert!(matches!(err, ServerError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
}

/// A hot standby (read-only, in recovery) is refused at connect with an
/// error that says so — not accepted, only for every acquire to fail.
#[test]
fn a_hot_standby_is_refused_at_connect() {
    let Some(cluster) = PgCluster::start() else { return };
    // The primary's lock tables reach the standby: only its role stops us.
    let primary = LockServer::connect(&cluster.admin()).expect("connect to the primary");
    drop(primary.lock("x").open().expect("open").acquire().expect("acquire"));
    let standby = cluster.start_standby();
    let err = LockServer::connect(&standby.admin()).unwrap_err();
    assert!(matches!(err, ServerError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("hot standby"), "{err}");
}

/// Through PgBouncer in transaction pooling, server sessions are handed
/// from client to client, and a session lock taken in one transaction
/// stays with a session another client may use next: packlock never
/// reports a hold it does not have. A client that gets a server session
/// another packlock client used is refused at connect, naming the pooler.
#[test]
fn transaction_pooling_never_gives_two_holders() {
    let Some(cluster) = PgCluster::start() else { return };
    let Some(bouncer) = common::pgbouncer::PgBouncer::start(&cluster, "transaction", 1) else {
        return;
    };
    let first = LockServer::connect(&bouncer.conn()).expect("the first client connects");
    let second = LockServer::connect(&bouncer.conn());
    let err = second.expect_err("a second client on the same server session");
    assert!(err.to_string().contains("pooler"), "{err}");
    let hold = first.lock("x").open().expect("open").try_acquire();
    // Whatever the first client got, a direct client must agree with it.
    let direct = LockServer::connect(&cluster.admin()).expect("connect directly");
    let theirs = direct.lock("x").open().expect("open").try_acquire();
    assert!(!(hold.is_ok() && theirs.is_ok()), "two holders: {hold:?} and {theirs:?}");
}

/// Session pooling gives each client a server session of its own, reset
/// when the client leaves: locks work through it as directly.
#[test]
fn session_pooling_works_like_a_direct_connection() {
    let Some(cluster) = PgCluster::start() else { return };
    let Some(bouncer) = common::pgbouncer::PgBouncer::start(&cluster, "session", 2) else {
        return;
    };
    let (a, b) = (LockServer::connect(&bouncer.conn()).expect("connect"), {
        LockServer::connect(&bouncer.conn()).expect("connect")
    });
    let held = a.lock("x").open().expect("open").try_acquire().expect("free");
    let busy = b.lock("x").open().expect("open").try_acquire();
    assert!(matches!(busy, Err(packlock::PackLockError::Busy { .. })), "{busy:?}");
    held.validate().expect("held");
    drop(held);
    drop(b.lock("x").open().expect("open").try_acquire().expect("free again"));
    // The next client on a server session the first one left is welcome.
    drop(a);
    let c = LockServer::connect(&bouncer.conn()).expect("a session reset by the pooler");
    drop(c.lock("x").open().expect("open").try_acquire().expect("free"));
}
