//! The holder record that packlock holders with a
//! [label](crate::PackLockBuilder::label) write into their lock file — pid,
//! label and start time — so that others can name them, and the merge of
//! that record with what the OS tells.
//!
//! The record is diagnostics only: failures to write or read it are
//! ignored, and nothing here decides who gets the lock.
//!
//! A lock opened with [fencing](crate::PackLockBuilder::fencing) also keeps
//! its fence counter here, as a first line `packlock-fence N` before the
//! record (if any). That line is not diagnostics: see [`next_fence`].

use std::fs::File;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Holder;
use crate::options::{MAX_LABEL_LEN, clamp_label};
use crate::sys::{self, FileKey};

/// Room for the largest content: the label plus the other lines (the
/// fence line, the header, a `u32` pid, a `u64` millisecond count and the
/// end line take well under 128 bytes).
const MAX_CONTENT_LEN: usize = MAX_LABEL_LEN + 128;

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
const FENCE_START: &str = "packlock-fence ";

/// Everything packlock writes into a lock file: an optional fence line,
/// then an optional holder record, then an optional padding line, and
/// nothing else. An empty file is packlock's too (all absent).
///
/// The padding keeps the file from ever shrinking: new content shorter
/// than the old (a shorter label, a pid with fewer digits) is padded to
/// the old length, so that it is written with one write at offset 0 and
/// no truncation. A process killed between a write and a truncation would
/// otherwise leave the tail of the longer record behind — bytes that are
/// no longer packlock's content, which would make every later fencing
/// acquire fail until someone emptied the file.
#[derive(Debug, Default, PartialEq, Eq)]
struct Content {
    fence: Option<u64>,
    record: Option<Record>,
    /// Length of the padding line: spaces, then a newline (0: none).
    padding: usize,
}

impl Content {
    fn to_text(&self) -> String {
        let fence = self.fence.map(|n| format!("{FENCE_START}{n}\n")).unwrap_or_default();
        let record = self.record.as_ref().map(Record::to_text).unwrap_or_default();
        let padding = match self.padding {
            0 => String::new(),
            len => " ".repeat(len - 1) + "\n",
        };
        fence + &record + &padding
    }

    /// This content, padded to at least `len` bytes of text.
    fn padded_to(mut self, len: usize) -> Self {
        self.padding = 0;
        self.padding = len.saturating_sub(self.to_text().len());
        self
    }

    /// The content that `bytes` are, if packlock wrote them: exactly what
    /// [`to_text`](Self::to_text) gives for some content, and nothing more.
    fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (fence, rest) = match text.strip_prefix(FENCE_START) {
            Some(rest) => {
                let (fence, rest) = rest.split_once('\n')?;
                (Some(fence.parse().ok()?), rest)
            }
            None => (None, text),
        };
        let (rest, padding) = split_padding(rest);
        let record = match rest {
            "" => None,
            rest => Some(Record::parse(rest.as_bytes())?),
        };
        let content = Self { fence, record, padding };
        // Padding alone is never written (it only follows content that
        // shrank): a file of blank lines is someone's, not ours.
        let padding_alone = padding > 0 && content.fence.is_none() && content.record.is_none();
        (content.to_text() == text && !padding_alone).then_some(content)
    }
}

/// `text` without its last line if that line is padding (spaces only),
/// and the padding's length.
fn split_padding(text: &str) -> (&str, usize) {
    let Some(body) = text.strip_suffix('\n') else { return (text, 0) };
    let start = body.rfind('\n').map_or(0, |i| i + 1);
    if body[start..].bytes().all(|b| b == b' ') {
        (&text[..start], text.len() - start)
    } else {
        (text, 0)
    }
}

/// Why a fence could not be read or kept.
#[derive(Debug)]
pub(crate) enum FenceError {
    /// Reading or writing the lock file failed.
    Io(io::Error),
    /// The lock file holds data packlock did not write, which is never
    /// overwritten.
    Foreign,
    /// The counter is at `u64::MAX`.
    Exhausted,
}

/// For the holder of the fence file `file` (see `fence`): the next fence,
/// one more than the counter there (0 when there is none yet) and at least
/// `at_least`, written back before it is returned and flushed to the disk
/// with `sync_data`, so that it survives a crash of the machine.
pub(crate) fn next_fence(file: &File, at_least: u64) -> Result<u64, FenceError> {
    let (mut content, len) = read_stored(file)?;
    let fence = content.fence.unwrap_or(0).checked_add(1).ok_or(FenceError::Exhausted)?;
    let fence = fence.max(at_least);
    content.fence = Some(fence);
    write_over(file, len, content).map_err(FenceError::Io)?;
    file.sync_data().map_err(FenceError::Io)?;
    Ok(fence)
}

/// The fence line a lock file may hold from before fences had a file of
/// their own (0 when it has none, or holds other data): every new fence
/// is larger. Writes nothing.
pub(crate) fn legacy_fence(file: &File) -> u64 {
    read_content(file).ok().and_then(|content| content.fence).unwrap_or(0)
}

/// What packlock keeps in `file`; [`FenceError::Foreign`] when it holds
/// anything else.
fn read_content(file: &File) -> Result<Content, FenceError> {
    Ok(read_stored(file)?.0)
}

/// [`read_content`], and the length of the file.
fn read_stored(file: &File) -> Result<(Content, usize), FenceError> {
    let bytes = read_start(file, MAX_CONTENT_LEN + 1).map_err(FenceError::Io)?;
    let content = Content::parse(&bytes).ok_or(FenceError::Foreign)?;
    Ok((content, bytes.len()))
}

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
/// `file` (best effort). Only a file that is empty or holds packlock's own
/// content (a fence line, a record, padding) is written, keeping its fence line:
/// anything else may be someone's data (people do lock their data files,
/// and append to them while holding the lock), so it is left byte for
/// byte as it is. A read-only lock file, too, just stays without a record.
pub(crate) fn write_record(file: &File, label: &str) {
    let (mut content, len) = match read_stored(file) {
        Ok(stored) => stored,
        Err(FenceError::Io(e)) => {
            log::debug!("not recording the lock holder: cannot read the lock file: {e}");
            return;
        }
        Err(_) => {
            log::debug!("not recording the lock holder: the lock file holds other data");
            return;
        }
    };
    content.record = Some(Record::now(label));
    if let Err(e) = write_over(file, len, content) {
        log::debug!("cannot record the lock holder: {e}");
    }
}

/// Writes `content` over the `len` bytes of packlock content now in
/// `file` (read just before, under the lock), padded to that length: one
/// write, never a truncation (see [`Content`]).
fn write_over(file: &File, len: usize, content: Content) -> io::Result<()> {
    write_start(file, content.padded_to(len).to_text().as_bytes())
}

/// Reads the record in the lock file, if it holds packlock's content with
/// one, through the lock's own open file: opening the path again could
/// block (a FIFO put there since) or find another file. (On Windows a file
/// locked by another process cannot be read: then there is none.)
fn read_record(file: &File) -> Option<Record> {
    read_content(file).ok()?.record
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
    use super::{Content, MAX_LABEL_LEN, Record, clamp_label};
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

    fn record() -> Record {
        Record {
            pid: 7,
            since: UNIX_EPOCH + Duration::from_millis(1500),
            label: "sync worker".into(),
        }
    }

    #[test]
    fn a_fence_line_and_a_record_round_trip_alone_and_together() {
        for content in [
            Content::default(),
            Content { fence: Some(42), record: None, padding: 0 },
            Content { fence: None, record: Some(record()), padding: 0 },
            Content { fence: Some(u64::MAX), record: Some(record()), padding: 0 },
            Content { fence: Some(42), record: Some(record()), padding: 1 },
            Content { fence: Some(42), record: Some(record()), padding: 300 },
            Content { fence: Some(42), record: None, padding: 5 },
        ] {
            assert_eq!(Content::parse(content.to_text().as_bytes()), Some(content));
        }
        let both = format!("packlock-fence 42\n{TEXT}");
        let content = Content { fence: Some(42), record: Some(record()), padding: 0 };
        assert_eq!(content.to_text(), both);
    }

    #[test]
    fn shorter_content_is_padded_to_the_old_length_and_longer_is_not() {
        let long = Content {
            fence: Some(9),
            record: Some(Record { label: "x".repeat(50), ..record() }),
            padding: 0,
        };
        let old_len = long.to_text().len();
        let short =
            Content { fence: Some(9), record: Some(record()), padding: 0 }.padded_to(old_len);
        let text = short.to_text();
        assert_eq!(text.len(), old_len);
        assert!(text.starts_with(&format!("packlock-fence 9\n{TEXT}")), "{text:?}");
        assert_eq!(Content::parse(text.as_bytes()), Some(short));

        // A longer one drops the padding; so does one of the same length.
        let longer = long.padded_to(TEXT.len());
        assert_eq!(longer.padding, 0);
        assert_eq!(longer.to_text().len(), old_len);
        let one_more = Content { fence: Some(10), ..longer }.padded_to(old_len);
        assert_eq!((one_more.padding, one_more.to_text().len()), (0, old_len + 1));
    }

    #[test]
    fn only_what_packlock_writes_is_packlock_content() {
        let both = format!("packlock-fence 42\n{TEXT}");
        for cut in 1..both.len() {
            // Cut right after the fence line, it is a fence line alone.
            if cut == "packlock-fence 42\n".len() {
                continue;
            }
            let prefix = &both.as_bytes()[..cut];
            assert_eq!(Content::parse(prefix), None, "{:?}", String::from_utf8_lossy(prefix));
        }
        for text in [
            "packlock-fence 42".to_string(),
            "packlock-fence 042\n".into(),
            "packlock-fence +42\n".into(),
            "packlock-fence -1\n".into(),
            "packlock-fence 18446744073709551616\n".into(),
            "packlock-fence \n".into(),
            "packlock-fence 1\npacklock-fence 2\n".into(),
            "packlock-fence 1\r\n".into(),
            format!("{TEXT}packlock-fence 1\n"),
            format!("packlock-fence 1\n{TEXT}data\n"),
            format!("packlock-fence 1\n{TEXT}  \n  \n"),
            format!("packlock-fence 1\n{TEXT}  "),
            format!("packlock-fence 1\n  \n{TEXT}"),
            "data\npacklock-fence 1\n".into(),
            "someone's data".into(),
            "\n".into(),
            "        \n".into(),
        ] {
            assert_eq!(Content::parse(text.as_bytes()), None, "{text:?}");
        }
    }
}
