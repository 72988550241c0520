//! Reading the log: the day files in date order, line by line, as records or as lines
//! that are not records (a torn last line, garbage), each with its `file:line`. Also
//! tails the log for `audit --follow`. Never fails on what a file contains, only on
//! I/O.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use super::AuditError;
use super::record::{self, LineError, Record};
use crate::time::{Day, Timestamp};

/// Longest line read whole. A record with stored arguments is bounded by the gateway's
/// `max_message_bytes` (8 MiB by default); anything longer is not ours and is skipped
/// without being held in memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// A line of the log: its file and 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The day file.
    pub file: PathBuf,
    /// The line number, from 1.
    pub line: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The file ends without a newline: a write was cut off (a crash, a full disk, or
    /// the file was truncated).
    Torn,
    /// Longer than [`MAX_LINE_BYTES`].
    Overlong,
    /// Not UTF-8.
    NotUtf8,
    /// Empty.
    Blank,
    /// Not a record (see the error).
    Invalid(LineError),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Torn => {
                f.write_str("torn line: the file ends without a newline (a write was cut off)")
            }
            Self::Overlong => write!(f, "line longer than {MAX_LINE_BYTES} bytes"),
            Self::NotUtf8 => f.write_str("line is not UTF-8"),
            Self::Blank => f.write_str("empty line"),
            Self::Invalid(e) => e.fmt(f),
        }
    }
}

/// One line of the log, read.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A record.
    Record {
        /// Where it is.
        at: Location,
        /// The record.
        record: Box<Record>,
    },
    /// A line that is not a record.
    Skipped {
        /// Where it is.
        at: Location,
        /// Why.
        reason: Skip,
    },
}

/// One raw line: its text (or why there is none) and where it is.
#[derive(Debug)]
pub(crate) struct RawLine {
    pub at: Location,
    /// The text without its `\n`, or why it is not a line to parse.
    pub text: Result<String, Skip>,
}

/// The day files in `dir` (`YYYY-MM-DD.jsonl`), oldest first. Other names are ignored;
/// a missing directory holds none.
pub fn day_files(dir: &Path) -> Result<Vec<(Day, PathBuf)>, AuditError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
            continue;
        };
        if let Ok(day) = Day::parse(stem) {
            files.push((day, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the day files in order, from a given day on; also follows them as they grow.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    /// Files of days before this are not read.
    from: Option<Day>,
    /// The file being read.
    open: Option<OpenFile>,
    /// The last day whose file was opened: later files come after it.
    last_day: Option<Day>,
}

#[derive(Debug)]
struct OpenFile {
    day: Day,
    path: PathBuf,
    reader: BufReader<File>,
    /// Lines returned so far.
    line: u64,
    /// The line being read: kept across calls when following.
    partial: Vec<u8>,
    /// The line being read is over [`MAX_LINE_BYTES`] (its bytes are discarded).
    overlong: bool,
}

impl Reader {
    /// A reader of the files in `dir` whose day is `from` or later (all when `None`).
    #[must_use]
    pub fn new(dir: &Path, from: Option<Day>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            from,
            open: None,
            last_day: None,
        }
    }

    /// The next entry, or `None` at the end of what is there now. With `follow`, a last
    /// line still without its newline is kept back (its writer may be mid-write) and
    /// returned once complete; calling again later returns what was appended since,
    /// including new day files.
    pub fn next_entry(&mut self, follow: bool) -> Result<Option<Entry>, AuditError> {
        Ok(self.next_line(follow)?.map(|raw| match raw.text {
            Err(reason) => Entry::Skipped { at: raw.at, reason },
            Ok(text) if text.trim().is_empty() => Entry::Skipped {
                at: raw.at,
                reason: Skip::Blank,
            },
            Ok(text) => match record::parse_line(&text) {
                Ok(record) => Entry::Record {
                    at: raw.at,
                    record: Box::new(record),
                },
                Err(e) => Entry::Skipped {
                    at: raw.at,
                    reason: Skip::Invalid(e),
                },
            },
        }))
    }

    /// The next raw line (see [`Reader::next_entry`]).
    pub(crate) fn next_line(&mut self, follow: bool) -> Result<Option<RawLine>, AuditError> {
        loop {
            if self.open.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let Some(file) = self.open.as_mut() else {
                return Ok(None);
            };
            if let Some(line) = file.read_line()? {
                return Ok(Some(line));
            }
            // At the end of this file for now.
            let later = self.has_later_file()?;
            let Some(file) = self.open.as_mut() else {
                return Ok(None);
            };
            if !file.partial.is_empty() || file.overlong {
                if follow && !later {
                    return Ok(None);
                }
                return Ok(Some(file.take_torn()));
            }
            if follow && !later {
                return Ok(None);
            }
            self.open = None;
        }
    }

    /// Opens the next file after [`Reader::last_day`]; false when there is none.
    fn open_next(&mut self) -> Result<bool, AuditError> {
        for (day, path) in day_files(&self.dir)? {
            if self.last_day.is_some_and(|last| day <= last) || self.from.is_some_and(|f| day < f) {
                continue;
            }
            self.last_day = Some(day);
            match File::open(&path) {
                Ok(file) => {
                    self.open = Some(OpenFile {
                        day,
                        path,
                        reader: BufReader::new(file),
                        line: 0,
                        partial: Vec::new(),
                        overlong: false,
                    });
                    return Ok(true);
                }
                // Removed since it was listed (retention): nothing to read there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(AuditError::io(&path, e)),
            }
        }
        Ok(false)
    }

    fn has_later_file(&self) -> Result<bool, AuditError> {
        let Some(open) = &self.open else {
            return Ok(false);
        };
        Ok(day_files(&self.dir)?.iter().any(|(day, _)| *day > open.day))
    }
}

impl OpenFile {
    /// The next complete line, or `None` at the end of the file (a partial line is kept
    /// in `partial`).
    fn read_line(&mut self) -> Result<Option<RawLine>, AuditError> {
        loop {
            let chunk = self
                .reader
                .fill_buf()
                .map_err(|e| AuditError::io(&self.path, e))?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let (taken, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            let body = &chunk[..if complete { taken - 1 } else { taken }];
            if !self.overlong {
                if self.partial.len() + body.len() > MAX_LINE_BYTES {
                    self.overlong = true;
                    self.partial = Vec::new();
                } else {
                    self.partial.extend_from_slice(body);
                }
            }
            self.reader.consume(taken);
            if complete {
                self.line += 1;
                let text = if std::mem::take(&mut self.overlong) {
                    Err(Skip::Overlong)
                } else {
                    String::from_utf8(std::mem::take(&mut self.partial)).map_err(|_| Skip::NotUtf8)
                };
                return Ok(Some(RawLine {
                    at: self.location(),
                    text,
                }));
            }
        }
    }

    /// The partial last line, as a torn line.
    fn take_torn(&mut self) -> RawLine {
        self.line += 1;
        self.partial.clear();
        self.overlong = false;
        RawLine {
            at: self.location(),
            text: Err(Skip::Torn),
        }
    }

    fn location(&self) -> Location {
        Location {
            file: self.path.clone(),
            line: self.line,
        }
    }
}

/// Every entry of the log from `since` on (records before it are left out; lines that
/// are not records are reported wherever a file read holds them).
pub fn read(dir: &Path, since: Option<Timestamp>) -> Records {
    Records {
        reader: Reader::new(dir, since.map(Timestamp::day)),
        since,
    }
}

/// The iterator [`read`] returns.
#[derive(Debug)]
pub struct Records {
    reader: Reader,
    since: Option<Timestamp>,
}

impl Iterator for Records {
    type Item = Result<Entry, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.next_entry(false) {
                Ok(Some(Entry::Record { record, .. }))
                    if self.since.is_some_and(|since| record.ts < since) => {}
                other => return other.transpose(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn texts(reader: &mut Reader, follow: bool) -> Vec<Result<String, Skip>> {
        let mut out = Vec::new();
        while let Some(line) = reader.next_line(follow).expect("read") {
            out.push(line.text);
        }
        out
    }

    #[test]
    fn a_partial_last_line_is_torn_when_reading_and_waited_for_when_following() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("2026-05-01.jsonl");
        fs::write(&path, "one\ntw").expect("write");
        fs::write(dir.path().join("notes.txt"), "ignored\n").expect("write");
        let mut reader = Reader::new(dir.path(), None);
        assert_eq!(
            texts(&mut reader, false),
            [Ok("one".into()), Err(Skip::Torn)]
        );

        let mut follower = Reader::new(dir.path(), None);
        assert_eq!(texts(&mut follower, true), [Ok("one".into())]);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(b"o\nthree\n").expect("append");
        assert_eq!(
            texts(&mut follower, true),
            [Ok("two".into()), Ok("three".into())]
        );
        // A new day's file is picked up; the old one is done.
        fs::write(dir.path().join("2026-05-02.jsonl"), "four\n").expect("write");
        assert_eq!(texts(&mut follower, true), [Ok("four".into())]);
        let at = follower.open.as_ref().expect("open").location();
        assert_eq!(at.line, 1);
        assert!(at.to_string().ends_with("2026-05-02.jsonl:1"));
    }

    #[test]
    fn files_before_the_first_day_are_not_read_and_bad_bytes_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("2026-05-01.jsonl"), "old\n").expect("write");
        fs::write(dir.path().join("2026-05-03.jsonl"), b"\xff\xfe\n\nnew\n").expect("write");
        let from = Day::parse("2026-05-02").expect("day");
        let mut reader = Reader::new(dir.path(), Some(from));
        assert_eq!(
            texts(&mut reader, false),
            [Err(Skip::NotUtf8), Ok(String::new()), Ok("new".into())]
        );
        assert!(
            day_files(&dir.path().join("missing"))
                .expect("none")
                .is_empty()
        );
    }
}
