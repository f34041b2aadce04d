//! One session (connection) to the server. Session-level advisory locks
//! belong to it: they end when it ends, so it watches its connection and
//! records the moment it is lost (closed, server restarted, backend
//! terminated, or keepalives failing on a dead network).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{CancelToken, Client};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::ServerConfig;
use super::error::{ServerError, reason};
use crate::backend::LostSignal;

/// How long an idle connection may go unanswered before TCP keepalives
/// start probing, unless the connection string sets `keepalives_idle`.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client: Client,
    /// The server's backend pid for this session.
    #[cfg_attr(not(all(test, unix)), allow(dead_code))]
    pub(crate) pid: i32,
    /// Set when the connection ends: by the task driving it, at once when
    /// the server closes it or the socket fails.
    lost: Arc<LostSignal>,
}

impl Session {
    /// Connects; the connection is driven by a task on the client thread
    /// (call from there) until the session is dropped or lost.
    pub(crate) async fn open(
        config: &ServerConfig,
        tls: &MakeRustlsConnect,
        server: &str,
    ) -> Result<Session, ServerError> {
        let mut client_config = config.client.clone();
        if client_config.get_application_name().is_none() {
            client_config.application_name("packlock");
        }
        if client_config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            client_config.keepalives_idle(KEEPALIVES_IDLE); // the client's default: too slow
        }
        let connect_error = |e: tokio_postgres::Error| ServerError::Connect {
            server: server.to_string(),
            reason: reason(&e),
        };
        let (client, connection) =
            client_config.connect(tls.clone()).await.map_err(connect_error)?;
        let lost = Arc::new(LostSignal::default());
        let watch = lost.clone();
        let name = server.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("lock server {name}: session ended: {}", reason(&e));
            }
            watch.set();
        });
        let pid = client.query_one("SELECT pg_backend_pid()", &[]).await.map_err(connect_error)?;
        Ok(Session { client, pid: pid.get(0), lost })
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
}
