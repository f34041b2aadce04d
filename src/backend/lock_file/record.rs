//! The holder record that packlock holders with a
//! [label](crate::PackLockBuilder::label) write into their lock file — pid,
//! label and start time — so that others can name them, and the merge of
//! that record with what the OS tells.
//!
//! All of this is diagnostics only: failures to write or read it are
//! ignored, and nothing here decides who gets the lock.

use std::fs::File;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Holder;
use crate::options::{MAX_LABEL_LEN, clamp_label};
use crate::sys::{self, FileKey};

/// Room for the largest record: the label plus the other lines (the
/// header, a `u32` pid, a `u64` millisecond count and the end line take
/// well under 100 bytes).
const MAX_RECORD_LEN: usize = MAX_LABEL_LEN + 128;

/// What a labelled holder writes into the lock file after locking it: the
/// whole file is one record, or it holds no record at all.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    pid: u32,
    since: SystemTime,
    label: String,
}

const RECORD_START: &str = "packlock-holder 1";
const RECORD_END: &str = "end";

impl Record {
    /// This process, holding since now.
    fn now(label: &str) -> Self {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let since = UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64);
        Self { pid: std::process::id(), since, label: clamp_label(label) }
    }

    fn to_text(&self) -> String {
        let millis = self.since.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let label = &self.label;
        format!("{RECORD_START}\npid {}\nsince {millis}\nlabel {label}\n{RECORD_END}\n", self.pid)
    }

    /// The record that `bytes` are, exactly: a whole, well-formed record and
    /// nothing more (no torn write, no data before or after it).
    fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let rest = text.strip_prefix(RECORD_START)?.strip_prefix('\n')?;
        let (pid, rest) = rest.strip_prefix("pid ")?.split_once('\n')?;
        let (millis, rest) = rest.strip_prefix("since ")?.split_once('\n')?;
        let (label, rest) = rest.strip_prefix("label ")?.split_once('\n')?;
        let since = UNIX_EPOCH + Duration::from_millis(millis.parse().ok()?);
        let record = Self { pid: pid.parse().ok()?, since, label: label.to_string() };
        // Nothing after the end line, and no spelling the writer would not
        // use (`+7`, `007`): what parses is what packlock wrote.
        (rest == format!("{RECORD_END}\n") && record.to_text() == text).then_some(record)
    }
}

/// Records this process, labelled `label`, as the holder of the lock file
/// `file` (best effort). Only a file that is empty or holds exactly one
/// record is written: anything else may be someone's data (people do lock
/// their data files, and append to them while holding the lock), so it is
/// left byte for byte as it is. A read-only lock file, too, just stays
/// without a record.
pub(crate) fn write_record(file: &File, label: &str) {
    match read_start(file, MAX_RECORD_LEN + 1) {
        Ok(bytes) if bytes.is_empty() || Record::parse(&bytes).is_some() => {}
        Ok(_) => {
            log::debug!("not recording the lock holder: the lock file holds other data");
            return;
        }
        Err(e) => {
            log::debug!("not recording the lock holder: cannot read the lock file: {e}");
            return;
        }
    }
    let text = Record::now(label).to_text();
    let written = write_start(file, text.as_bytes()).and_then(|()| file.set_len(text.len() as u64));
    if let Err(e) = written {
        log::debug!("cannot record the lock holder: {e}");
    }
}

/// Reads the record in the lock file, if it holds exactly one, through the
/// lock's own open file: opening the path again could block (a FIFO put
/// there since) or find another file. (On Windows a file locked by another
/// process cannot be read: then there is none.)
fn read_record(file: &File) -> Option<Record> {
    Record::parse(&read_start(file, MAX_RECORD_LEN + 1).ok()?)
}

/// Up to `limit` bytes from the start of `file`, read at explicit offsets
/// so that threads sharing the file never move each other's position.
fn read_start(file: &File, limit: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; limit];
    let mut len = 0;
    while len < limit {
        match sys::read_at(file, &mut bytes[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// Writes all of `bytes` at the start of `file`, at explicit offsets.
fn write_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match sys::write_at(file, &bytes[done..], done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The holders of the lock file `file` with identity `key`: from the OS
/// where it tells, enriched with the record of a labelled packlock holder.
pub(crate) fn holders(file: &File, key: &FileKey) -> Vec<Holder> {
    let record = read_record(file);
    let mut holders = sys::flock_holders(key);
    if holders.is_empty() && !sys::LISTS_FLOCK_HOLDERS {
        // No OS list: the record is the best guess (it may be stale).
        holders.extend(record.as_ref().map(|r| Holder {
            pid: r.pid,
            shared: None,
            label: None,
            since: None,
        }));
    }
    if let Some(record) = record {
        for holder in holders.iter_mut().filter(|h| h.pid == record.pid) {
            holder.label = Some(record.label.clone());
            holder.since = Some(record.since);
        }
    }
    holders
}

#[cfg(test)]
mod tests {
    use super::{MAX_LABEL_LEN, Record, clamp_label};
    use std::time::{Duration, UNIX_EPOCH};

    const TEXT: &str = "packlock-holder 1\npid 7\nsince 1500\nlabel sync worker\nend\n";

    #[test]
    fn a_record_round_trips_and_a_torn_one_is_ignored() {
        let record = Record {
            pid: 7,
            since: UNIX_EPOCH + Duration::from_millis(1500),
            label: "sync worker".into(),
        };
        assert_eq!(Record::parse(TEXT.as_bytes()), Some(record));
        for cut in 1..TEXT.len() {
            assert_eq!(Record::parse(&TEXT.as_bytes()[..cut]), None, "{cut}");
        }
        assert_eq!(Record::parse(b"something else"), None);
    }

    #[test]
    fn only_a_record_and_nothing_more_is_a_record() {
        for text in [
            format!("{TEXT}appended\n"),
            format!("{TEXT}{TEXT}"),
            format!("data\n{TEXT}"),
            TEXT.replace("pid 7", "pid +7"),
            TEXT.replace("pid 7", "pid 07"),
            TEXT.replace('\n', "\r\n"),
            TEXT.trim_end().to_string(),
        ] {
            assert_eq!(Record::parse(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn labels_are_cut_on_a_character_boundary_and_kept_on_one_line() {
        let long = "é".repeat(5000);
        let clamped = clamp_label(&long);
        assert!(clamped.len() <= MAX_LABEL_LEN && clamped.len() > MAX_LABEL_LEN - 4);
        assert!(long.starts_with(&clamped));
        assert_eq!(clamp_label("two\nlines\r"), "two lines ");
        let record = Record::now(&long);
        assert_eq!(Record::parse(record.to_text().as_bytes()), Some(record));
    }
}
