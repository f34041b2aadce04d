//! [`ServerLock`]: a named lock on a [`LockServer`] as a backend of the
//! acquire pipeline, so that a server lock is a [`PackLock`](crate::PackLock)
//! like a lock file — same queue per lock in a process, same acquires,
//! tiers, shared holds and cancellation — with a fence and a lost signal
//! on every grant.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cancel::WaitCancel;
use super::server::{DEFAULT_SCHEMA, LockServer};
use crate::backend::{Grant, Interrupt, LockBackend, LockKey, Mode};
use crate::{Holder, PackLockError};

/// One name on one server.
#[derive(Clone, Debug)]
pub(crate) struct ServerLock {
    server: LockServer,
    name: String,
    key: LockKey,
    /// What errors and logs name it: see [`display_path`].
    path: PathBuf,
}

impl ServerLock {
    pub(crate) fn new(server: LockServer, name: String) -> Self {
        let location = server.location();
        let schema = server.schema().to_string();
        let path = PathBuf::from(display_path(&location, &schema, &name));
        let server_id = server.identity().to_string();
        let key = LockKey::Server { server: server_id, schema, name: name.clone() };
        Self { server, name, key, path }
    }

    fn shared(mode: Mode) -> bool {
        mode == Mode::Shared
    }

    /// The grant for `fence`, with the signal of the session that holds
    /// the lock now.
    fn grant(&self, fence: u64) -> Grant {
        Grant { fence: Some(fence), lost: self.server.lost_signal(&self.name) }
    }

    fn lost(&self, reason: &str) -> PackLockError {
        PackLockError::Lost { path: self.path.clone(), reason: reason.to_string() }
    }
}

/// `postgres://host:port/dbname/NAME`, with `?schema=SCHEMA` for another
/// schema than the default: never the user or the password. `%`, `?` and
/// `#` in the name and schema are percent-encoded, so that two different
/// locks never print the same (the name `x?schema=y` of the default schema
/// and the name `x` of schema `y`).
fn display_path(location: &str, schema: &str, name: &str) -> String {
    let mut path = format!("postgres://{location}/{}", escape(name));
    if schema != DEFAULT_SCHEMA {
        path.push_str(&format!("?schema={}", escape(schema)));
    }
    path
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '?' => escaped.push_str("%3F"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    escaped
}

impl LockBackend for ServerLock {
    fn key(&self) -> &LockKey {
        &self.key
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// On the server's main session: one round trip for an exclusive try
    /// (try-lock, fence and record in one statement, the fence committed
    /// before it returns), two for a shared one (the try, then the fence
    /// read and the record); the first try of a name also inserts its row.
    fn try_lock(&self, mode: Mode) -> Result<Option<Grant>, PackLockError> {
        let fence = self.server.try_lock(&self.name, Self::shared(mode))?;
        Ok(fence.map(|fence| self.grant(fence)))
    }

    /// Waits on a session of its own; `interrupt` cancels the waiting
    /// query (a cancel request to the server), so an abandoned wait ends
    /// within a round trip or two, with nothing held and nothing queued on
    /// the server; a wait whose connection went silent ends when that
    /// connection is closed, within two heartbeat intervals.
    fn lock(&self, mode: Mode, interrupt: &Interrupt) -> Result<Grant, PackLockError> {
        let cancel = WaitCancel::new();
        let canceller = cancel.clone();
        interrupt.on_fire(move || canceller.cancel());
        let fence = self.server.lock_wait(&self.name, Self::shared(mode), &cancel)?;
        Ok(self.grant(fence))
    }

    fn unlock(&self) -> Result<(), PackLockError> {
        Ok(self.server.unlock(&self.name)?)
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn wait_trouble(&self) -> Option<String> {
        self.server.trouble(&self.name)
    }

    /// Without asking the server: a name is never replaced, and a grant
    /// just made (or joined) ended only if its session was lost.
    fn confirm(&self, grant: &Grant) -> Result<bool, PackLockError> {
        match grant.is_lost() {
            true => Err(self.lost("the session holding it ended")),
            false => Ok(true),
        }
    }

    /// A name is never replaced, so this is never `Ok(false)`: the hold is
    /// either still the session's (asked of the server, one round trip) or
    /// [`PackLockError::Lost`].
    fn is_current(&self, grant: &Grant) -> Result<bool, PackLockError> {
        if grant.is_lost() {
            return Err(self.lost("the session holding it ended"));
        }
        match self.server.check(&self.name)? {
            Some(true) => Ok(true),
            Some(false) => Err(self.lost("the server no longer has it for this session")),
            // Taken through another `LockServer` of this process (the two
            // share the lock's queue): its session's signal is all we have.
            None => Ok(true),
        }
    }

    /// From the server's `pg_locks`: pids are server backend pids, labels
    /// name the client address.
    fn holders(&self) -> Vec<Holder> {
        match self.server.holders(&self.name) {
            Ok(holders) => holders.iter().map(|h| h.to_holder()).collect(),
            Err(e) => {
                log::debug!("cannot list holders: {e}");
                Vec::new()
            }
        }
    }

    fn record_holder(&self, label: &str) {
        if let Err(e) = self.server.record_holder(&self.name, label) {
            log::debug!("cannot record the holder: {e}");
        }
    }

    /// The same lock: a name is never replaced. (A child made by `fork`
    /// cannot use its parent's `LockServer`, whose client thread it lacks;
    /// connect in the child.)
    fn reopen(&self) -> Result<Arc<dyn LockBackend>, PackLockError> {
        Ok(Arc::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::display_path;

    #[test]
    fn different_locks_never_print_the_same() {
        let at = "db:5432/locks";
        assert_eq!(display_path(at, "packlock", "packs/foo"), "postgres://db:5432/locks/packs/foo");
        let named = display_path(at, "packlock", "x?schema=y");
        let schema = display_path(at, "y", "x");
        assert_ne!(named, schema);
        assert_eq!(named, "postgres://db:5432/locks/x%3Fschema=y");
        assert_eq!(schema, "postgres://db:5432/locks/x?schema=y");
        assert_ne!(display_path(at, "packlock", "a%3Fb"), display_path(at, "packlock", "a?b"));
    }
}
