//! [`ServerError`]: why talking to the lock server failed. Every message
//! names the server as host, port and database — never its password.

/// Why connecting to a [`LockServer`](super::LockServer), or a lock
/// operation on it, failed.
///
/// Messages name the server (`host:port/dbname as user`) so that the user
/// knows where to look; they never contain the password.
///
/// # Example
///
/// ```
/// use packlock::postgres::{LockServer, ServerError};
///
/// // A typo in an option name is refused before anything is sent.
/// let err = LockServer::connect("host=localhost pasword=secret").unwrap_err();
/// assert!(matches!(err, ServerError::InvalidConnectionString { .. }));
/// assert!(!err.to_string().contains("secret"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The connection string could not be understood. The message says
    /// which option is wrong, never its value (it may be a password).
    #[error("invalid lock server connection string: {reason}")]
    #[non_exhaustive]
    InvalidConnectionString {
        /// What is wrong with it.
        reason: String,
    },

    /// Connecting failed for a reason waiting will not fix: the server
    /// refused us (wrong password, no such database or role, TLS required,
    /// refused or not trusted), or the client could not be set up (the CA
    /// file, TLS, the client thread).
    #[error("cannot connect to lock server {server}: {reason}")]
    #[non_exhaustive]
    Connect {
        /// The server, as `host:port/dbname as user`.
        server: String,
        /// Why, as the client or the server reported it.
        reason: String,
    },

    /// The server could not be reached, or the session an operation ran
    /// on was lost: the server restarted or is shutting down, the
    /// connection was cut or went silent, the backend was terminated.
    /// Waits for a lock ride these out until their deadline; other
    /// operations report them on their first attempt (after up to
    /// `connect_timeout`, 10 s by default, when packets are dropped).
    ///
    /// ```no_run
    /// use packlock::postgres::LockServer;
    ///
    /// // Start before the lock server does: keep trying while it is out of reach.
    /// let server = loop {
    ///     match LockServer::connect("host=db.internal user=packs dbname=locks") {
    ///         Err(e) if e.is_unavailable() => std::thread::sleep(std::time::Duration::from_secs(1)),
    ///         connected => break connected?,
    ///     }
    /// };
    /// # Ok::<(), packlock::postgres::ServerError>(())
    /// ```
    #[error("lock server {server} is unavailable: {reason}")]
    #[non_exhaustive]
    Unavailable {
        /// The server, as `host:port/dbname as user`.
        server: String,
        /// What failed, and why, as the client or the server reported it.
        reason: String,
    },

    /// The lock tables could not be created or used, most often because
    /// the role lacks a privilege (see the module documentation).
    #[error("lock server {server}: cannot set up schema `{schema}`: {reason}")]
    #[non_exhaustive]
    Schema {
        /// The server, as `host:port/dbname as user`.
        server: String,
        /// The schema that holds the lock tables.
        schema: String,
        /// What the server reported.
        reason: String,
    },

    /// A lock name is empty, too long or contains a NUL character.
    #[error("invalid lock name {name:?}: {reason}")]
    #[non_exhaustive]
    InvalidName {
        /// The name (its first 64 characters when it is longer).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The schema name given to the builder is not usable.
    #[error("invalid schema name {schema:?}: {reason}")]
    #[non_exhaustive]
    InvalidSchema {
        /// The schema name as given.
        schema: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A lock operation failed on the server (a lost session or a server
    /// out of reach is [`Unavailable`](Self::Unavailable)).
    #[error("lock server {server}: {what} of lock {name:?} failed: {reason}")]
    #[non_exhaustive]
    Operation {
        /// The server, as `host:port/dbname as user`.
        server: String,
        /// The operation: `acquire`, `release`, `fence`, `holders`, ...
        what: &'static str,
        /// The lock name.
        name: String,
        /// What the client or the server reported.
        reason: String,
    },

    /// This process already holds the named lock through this server; the
    /// in-process registry must share one hold per name.
    #[error("lock {name:?} is already held by this process on lock server {server}")]
    #[non_exhaustive]
    AlreadyHeld {
        /// The server, as `host:port/dbname as user`.
        server: String,
        /// The lock name.
        name: String,
    },

    /// A wait for a lock was cancelled. Nothing is held afterwards.
    #[error("wait for lock {name:?} on lock server {server} was cancelled")]
    #[non_exhaustive]
    Cancelled {
        /// The server, as `host:port/dbname as user`.
        server: String,
        /// The lock name.
        name: String,
    },
}

impl ServerError {
    /// Whether this is a cancelled wait.
    ///
    /// # Example
    ///
    /// ```
    /// use packlock::postgres::ServerError;
    /// # let err = packlock::postgres::LockServer::connect("pasword=x").unwrap_err();
    /// assert!(!err.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }

    /// Whether the server was out of reach: a later attempt may succeed.
    ///
    /// # Example
    ///
    /// ```
    /// # let err = packlock::postgres::LockServer::connect("pasword=x").unwrap_err();
    /// assert!(!err.is_unavailable()); // a typo stays a typo
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Connecting failed: [`Unavailable`](Self::Unavailable) when the
    /// server was out of reach, [`Connect`](Self::Connect) when it refused.
    pub(crate) fn connect(server: &str, error: &tokio_postgres::Error) -> ServerError {
        let (server, reason) = (server.to_string(), reason(error));
        if is_unavailable(error) {
            ServerError::Unavailable { server, reason }
        } else {
            ServerError::Connect { server, reason }
        }
    }
}

/// Whether `error` says the server is out of reach rather than that it
/// refused: the connection closed or failed at the socket, the host name
/// did not resolve (a DNS outage looks like a misspelt name: both are
/// waited out, and the error names the name), the server is starting,
/// stopping, or ended the session (SQLSTATE class 08, 57P01-03, 57P05), or
/// has no connection to spare (53300). A TLS certificate the client does
/// not trust is a refusal.
pub(crate) fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    use std::io::ErrorKind::*;
    if error.is_closed() {
        return true;
    }
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        // 57P04 is a dropped database: no waiting brings it back.
        return code.starts_with("08")
            || matches!(code, "57P01" | "57P02" | "57P03" | "57P05")
            || code == "53300"; // too many connections, for now
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return is_name_lookup_failure(io)
                || matches!(
                    io.kind(),
                    ConnectionRefused
                        | ConnectionReset
                        | ConnectionAborted
                        | NotConnected
                        | BrokenPipe
                        | UnexpectedEof
                        | TimedOut
                        | HostUnreachable
                        | NetworkUnreachable
                        | AddrNotAvailable
                        | NotFound // a Unix socket, while the server is down
                );
        }
        source = cause.source();
    }
    // No cause at all: tokio-postgres's own timeouts and closed streams.
    matches!(error.to_string().as_str(), "timeout waiting for server" | "connection closed")
}

/// A failed host name lookup: std and tokio report every `getaddrinfo`
/// failure with this message and no kind of its own.
fn is_name_lookup_failure(error: &std::io::Error) -> bool {
    error.to_string().starts_with("failed to lookup address information")
}

/// A client error as one line: the server's own message for a database
/// error (with its SQLSTATE), else the client's message and its cause.
/// Neither ever contains the password.
pub(crate) fn reason(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
