//! A critical section that detects overlap and lost updates through files
//! in `dir`, so that it works across processes: entering creates a marker
//! with `create_new` (failing if another holder is inside) and reads a
//! counter; leaving writes the counter back incremented and removes the
//! marker. Callers yield or await between the two to widen the window.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::Path;

pub fn enter(dir: &Path) -> u64 {
    match OpenOptions::new().write(true).create_new(true).open(dir.join("occupied")) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            panic!("two holders inside the critical section at once")
        }
        Err(e) => panic!("cannot create occupancy marker: {e}"),
    }
    count(dir)
}

pub fn leave(dir: &Path, seen: u64) {
    fs::write(dir.join("counter"), (seen + 1).to_string()).expect("write counter");
    fs::remove_file(dir.join("occupied")).expect("remove occupancy marker");
}

pub fn count(dir: &Path) -> u64 {
    match fs::read_to_string(dir.join("counter")) {
        Ok(text) => text.trim().parse().expect("counter holds a number"),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => panic!("cannot read counter: {e}"),
    }
}
