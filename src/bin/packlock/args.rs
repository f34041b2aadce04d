//! The `packlock` command line.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use packlock::{PACK_LOCK_FILE_NAME, PackLock, PackLockError};

const EXAMPLES: &str = "\
Examples:
  packlock /srv/pack -- make                  run make while holding /srv/pack's lock
  packlock --shared /srv/pack -- ./read.sh    many shared holders at once
  packlock -n /srv/pack make || echo busy     give up at once if it is held
  packlock -w 0.5 -E 75 /srv/pack -- make     wait half a second, then exit 75
  packlock --status /srv/pack                 free (exit 0) or held, and by whom (exit 1)
  packlock --fencing /srv/pack -- ./upload    ./upload reads its fence from $PACKLOCK_FENCE

Exit codes: the command's own (128+N if killed by signal N); the conflict code \
(default 1) when the lock is held; 1 when packlock fails; 2 for usage errors; \
126/127 when the command cannot be run or is not found. --status: 0 free, 1 held.

Run as `flock` (a link or copy named flock), it takes util-linux flock(1)'s \
command line instead: see `flock --help`.";

/// Run a command while holding the lock of a directory (a portable flock(1)).
#[derive(Debug, Parser)]
#[command(
    name = "packlock",
    version,
    override_usage = "packlock [OPTIONS] <DIR> [--] <COMMAND> [ARGS]...\n       packlock --status [--file <NAME>] <DIR>",
    after_help = EXAMPLES
)]
pub struct Args {
    /// Take a shared lock: shared holders run together, exclusive ones alone
    #[arg(short, long)]
    pub shared: bool,

    /// Give up at once if the lock is held
    #[arg(short, long, visible_alias = "nb", conflicts_with = "timeout")]
    pub nonblock: bool,

    /// Give up after SECS seconds (fractions allowed; 0 means --nonblock)
    #[arg(
        short = 'w',
        long,
        value_name = "SECS",
        value_parser = parse_seconds,
        allow_negative_numbers = true
    )]
    pub timeout: Option<Duration>,

    /// Exit code when the lock is held and packlock gives up
    #[arg(short = 'E', long, value_name = "N", default_value_t = 1)]
    pub conflict_exit_code: u8,

    /// Lock file name inside DIR [default: .pack-lock]
    #[arg(long, value_name = "NAME")]
    pub file: Option<OsString>,

    /// Hold the lock named DIR on this PostgreSQL server instead of a
    /// directory's lock file ("host=db user=packs dbname=locks" or a
    /// postgresql:// URL); the command gets the fence as PACKLOCK_FENCE
    #[cfg(feature = "postgres")]
    #[arg(long, value_name = "CONN", conflicts_with = "file")]
    pub postgres: Option<String>,

    /// With --postgres: the signal the command gets if the hold is lost
    /// while it runs (TERM, INT, HUP, QUIT, KILL, USR1, USR2 or a number).
    /// packlock also passes TERM, INT and HUP on to the command and waits
    /// for it, and on Linux the command is killed if packlock dies
    #[cfg(all(feature = "postgres", unix))]
    #[arg(long, value_name = "SIGNAL", default_value = "TERM", value_parser = crate::guard::parse_signal)]
    pub on_lost: i32,

    /// Give the command its hold's fence as PACKLOCK_FENCE, larger for every
    /// holder than for any before (kept in <lock file>.fence; server locks
    /// always have fences)
    #[arg(long)]
    pub fencing: bool,

    /// Label shown to others asking who holds the lock, up to 1,024 bytes [default: "packlock COMMAND", none with --file]
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,

    /// Keep the lock from the command: packlock holds it alone and releases
    /// it when the command exits, even if the command left processes
    /// running (by default the command inherits the lock, which then stays
    /// held while it or anything it left running is alive, even if packlock
    /// is killed)
    #[arg(short = 'o', long)]
    pub close: bool,

    /// Report on stderr when the lock is held, after how long, and when released
    #[arg(short, long)]
    pub verbose: bool,

    /// Print whether the lock of DIR is free (exit 0) or held and by whom (exit 1)
    #[arg(
        long,
        conflicts_with_all = ["shared", "nonblock", "timeout", "conflict_exit_code", "label", "fencing", "close", "command"]
    )]
    pub status: bool,

    /// The directory to lock (created if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The command to run while holding the lock, and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "status"
    )]
    pub command: Vec<OsString>,
}

/// How long to wait for a held lock.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    Never,
    For(Duration),
    Forever,
}

impl Args {
    pub fn wait(&self) -> Wait {
        match self.timeout {
            _ if self.nonblock => Wait::Never,
            Some(timeout) if timeout.is_zero() => Wait::Never,
            Some(timeout) => Wait::For(timeout),
            None => Wait::Forever,
        }
    }

    pub fn file_name(&self) -> &OsStr {
        self.file.as_deref().unwrap_or(OsStr::new(PACK_LOCK_FILE_NAME))
    }

    /// The lock file's path, before the library checks the name.
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join(self.file_name())
    }

    /// Opens the lock the arguments name: a lock server's named lock with
    /// `--postgres`, else the lock file of `DIR`; labelled `label`.
    pub fn open(&self, label: Option<String>) -> Result<PackLock, PackLockError> {
        #[cfg(feature = "postgres")]
        if let Some(server) = &self.postgres {
            return self.open_on_server(server, label);
        }
        let builder = PackLock::builder(&self.dir)
            .file_name(self.file_name())
            .shared(self.shared)
            .fencing(self.fencing);
        match label {
            Some(label) => builder.label(label).open(),
            None => builder.open(),
        }
    }

    /// `--postgres CONN NAME`: the lock `NAME` on the server `CONN`.
    #[cfg(feature = "postgres")]
    fn open_on_server(
        &self,
        server: &str,
        label: Option<String>,
    ) -> Result<PackLock, PackLockError> {
        // Checked at parse time (see `Args::check`), so never lossy here.
        let name = self.dir.to_string_lossy();
        let builder =
            packlock::postgres::LockServer::connect(server)?.lock(&name).shared(self.shared);
        match label {
            Some(label) => builder.label(label).open(),
            None => builder.open(),
        }
    }

    /// Whether the lock is a directory's lock file (not a server's).
    pub fn names_a_lock_file(&self) -> bool {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return false;
        }
        true
    }

    /// What clap cannot check: a server lock's name must be UTF-8.
    pub fn check(&self) -> Result<(), String> {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() && self.dir.to_str().is_none() {
            return Err(format!("the lock name {:?} is not UTF-8", self.dir));
        }
        Ok(())
    }

    pub fn mode(&self) -> &'static str {
        if self.shared { "shared" } else { "exclusive" }
    }
}

/// `--timeout`: a number of seconds, fractions allowed, like `flock -w`.
/// Any finite non-negative number goes; one too large for a `Duration`
/// waits as long as [`Duration::MAX`], which is forever.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 =
        text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !seconds.is_finite() {
        return Err(format!("`{text}` is not a finite number of seconds"));
    }
    if seconds < 0.0 {
        return Err(format!("`{text}` is negative; the timeout is a number of seconds >= 0"));
    }
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}
