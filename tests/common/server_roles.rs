//! Child roles shared by the server lock tests (`postgres` feature), on
//! the lock `NAME` of the server whose connection string is in
//! `dir/conn`.

use std::path::Path;

use packlock::postgres::LockServer;

/// The lock the roles take.
pub const NAME: &str = "packs/foo";

/// Child role: hold the lock, write its fence to `dir/fence`, say
/// "locked", keep it until told, release it, say "released".
pub fn hold(dir: &Path) {
    let conn = std::fs::read_to_string(dir.join("conn")).expect("read conn");
    let lock = LockServer::connect(&conn).expect("connect").lock(NAME).open().expect("open");
    let hold = lock.acquire().expect("acquire");
    std::fs::write(dir.join("fence"), hold.fence().expect("fence").to_string()).expect("write");
    super::tell_parent("locked");
    super::wait_for_parent();
    drop(hold);
    super::tell_parent("released");
}
