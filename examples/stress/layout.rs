//! Where everything lives in the working directory.

use std::io;
use std::path::{Path, PathBuf};

pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn create_dirs(&self) -> io::Result<()> {
        for dir in ["packs", "counters", "logs", "staging", "graveyard", "storage"] {
            std::fs::create_dir_all(self.root.join(dir))?;
        }
        Ok(())
    }

    /// The pack directory whose sidecar is lock file `file`.
    pub fn pack_dir(&self, file: usize) -> PathBuf {
        self.root.join("packs").join(format!("p{file}"))
    }

    pub fn lock_path(&self, file: usize) -> PathBuf {
        self.pack_dir(file).join(packlock::PACK_LOCK_FILE_NAME)
    }

    /// The counter of the lock file with inode `ino`.
    pub fn counter_path(&self, ino: u64) -> PathBuf {
        self.root.join("counters").join(ino.to_string())
    }

    /// Server mode: part `part` (`guard`, `fence`, `counter`) of the
    /// fenced storage of lock name `name`.
    pub fn storage_path(&self, name: usize, part: &str) -> PathBuf {
        self.root.join("storage").join(format!("n{name}.{part}"))
    }

    #[cfg(feature = "postgres")]
    /// Server mode: the lock name of index `name`, unique to this run (the
    /// working directory's name is random).
    pub fn lock_name(&self, name: usize) -> String {
        let run = self.root.file_name().map(|n| n.to_string_lossy().into_owned());
        format!("stress/{}/n{name}", run.unwrap_or_default())
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log_path(&self, slot: usize, generation: u64) -> PathBuf {
        self.logs().join(format!("w{slot}-g{generation}.log"))
    }

    /// Where the coordinator prepares a file to rename over a lock file.
    pub fn staging(&self, serial: u64) -> PathBuf {
        self.root.join("staging").join(serial.to_string())
    }

    /// Where the coordinator renames lock files away to.
    pub fn graveyard(&self, serial: u64) -> PathBuf {
        self.root.join("graveyard").join(serial.to_string())
    }
}
