//! Reading a send log: [`LogReader`] streams `t_ms,kind[,recipient[,slices]]` lines as
//! [`SendRecord`]s, and names the line of each [`LogError`].

use std::io::{self, BufRead, Read};
use std::ops::Range;

use super::line::{Columns, Fields, parse_line};
use crate::slice::Slices;

/// One send read from a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendRecord<'a> {
    /// The line it was read from (1-based).
    pub line: u64,
    /// When, in milliseconds from the log's origin.
    pub t_ms: u64,
    /// The notification kind.
    pub kind: &'a str,
    /// Whom it was for (the third column), if the line names one.
    pub recipient: Option<&'a str>,
    /// What it names below its kind (the fourth column, `prefix=+447;tenant=acme`), with the
    /// recipient: [`Slices::none`] for a line without a fourth column, so that a log of three
    /// columns replays as it always did. Replay it with
    /// [`Backtest::check_sliced`](super::Backtest::check_sliced).
    pub slices: Slices<'a>,
    /// The fourth column as written, if the line has one.
    pub(super) slices_text: Option<&'a str>,
}

/// A line of a send log that cannot be replayed (or the log could not be read). Log content in
/// a message is quoted, with control characters escaped, and shortened if long.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The line does not have the shape `t_ms,kind[,recipient[,slices]]`.
    #[error("line {line}: malformed, expected `t_ms,kind[,recipient[,slices]]`: {what}")]
    Malformed {
        /// The line (1-based).
        line: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The time is not a whole number of milliseconds.
    #[error("line {line}: time {value} is not a whole number of milliseconds")]
    Time {
        /// The line (1-based).
        line: u64,
        /// The time as written (quoted, escaped, shortened if long).
        value: String,
    },
    /// The time is earlier than a line before it: the log must be sorted by time.
    #[error(
        "line {line}: time {t_ms} goes backwards (a line before is at {previous_ms}); sort the log by time"
    )]
    Backwards {
        /// The line (1-based).
        line: u64,
        /// Its time.
        t_ms: u64,
        /// The later time before it.
        previous_ms: u64,
    },
    /// The time is later than the two lines after it, which agree with the lines before: a
    /// stray time (a typo), skipped so that it does not throw every later line out of order.
    #[error(
        "line {line}: time {t_ms} is later than the lines after it (the next in order is at {next_ms}): a stray time"
    )]
    Ahead {
        /// The line (1-based).
        line: u64,
        /// Its time.
        t_ms: u64,
        /// The time of the line after it that showed it stray.
        next_ms: u64,
    },
    /// The kind column is empty.
    #[error("line {line}: the kind is empty")]
    EmptyKind {
        /// The line (1-based).
        line: u64,
    },
    /// The kind breaks the kind-name rule ([`validate_kind_name`](crate::config::validate_kind_name)).
    #[error("line {line}: invalid kind {kind}: {reason}")]
    InvalidKind {
        /// The line (1-based).
        line: u64,
        /// The kind as written (quoted, escaped, shortened if long).
        kind: String,
        /// The part of the rule it breaks.
        reason: &'static str,
    },
    /// The line is longer than the reader reads ([`LogReader::with_max_line_bytes`]); it is
    /// skipped whole, without being held in memory.
    #[error("line {line}: longer than {max_bytes} bytes")]
    TooLong {
        /// The line (1-based).
        line: u64,
        /// The longest line the reader reads.
        max_bytes: usize,
    },
    /// The fourth column is not `name=value` pairs separated by `;` that keep the slice rule
    /// ([`check_pair`](crate::guard::check_pair)).
    #[error("line {line}: slices: {problem}")]
    Slices {
        /// The line (1-based).
        line: u64,
        /// What is wrong with them.
        problem: String,
    },
    /// The log could not be read.
    #[error("line {line}: cannot read the log: {source}")]
    Io {
        /// The line being read (1-based).
        line: u64,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
}

impl LogError {
    /// The line the error is about (1-based).
    pub fn line(&self) -> u64 {
        match self {
            Self::Malformed { line, .. }
            | Self::Time { line, .. }
            | Self::Backwards { line, .. }
            | Self::Ahead { line, .. }
            | Self::EmptyKind { line }
            | Self::InvalidKind { line, .. }
            | Self::TooLong { line, .. }
            | Self::Slices { line, .. }
            | Self::Io { line, .. } => *line,
        }
    }

    /// Whether the error is about the log's content (a bad line), rather than reading it.
    pub fn is_bad_line(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

/// Streams [`SendRecord`]s from a send log: one send a line, `t_ms,kind[,recipient[,slices]]`,
/// sorted by time; the slices are `name=value` pairs separated by `;`
/// (`1700000000000,sms.login_code,+447700900123,prefix=+447;tenant=acme`), the name `content`
/// giving the content key of the repeat check. A first line whose time column is a name (`t_ms,kind`) is a header, after a UTF-8
/// byte-order mark if there is one; blank lines are ignored; a field may be quoted as in CSV
/// (`"a, b"`, `""` for a quote), within its line. Lines are read up to 64 KiB
/// ([`with_max_line_bytes`](Self::with_max_line_bytes)), into two buffers reused for the whole
/// log, so memory stays flat however long the log or any line is.
///
/// A bad line is returned as an error naming it, and reading may go on past it. A skipped line
/// never moves the log's clock: each send is held until the line after it confirms its time, so
/// that one stray time far ahead (a typo) is what is refused, rather than every line after it as
/// "backwards". A send is returned when the next send is read (the last at the end of the log).
///
/// ```
/// use spikebreaker::backtest::LogReader;
/// let log = "t_ms,kind,recipient\n5,a,\"Doe, Jo\" <jo@example.com>\n3,b\n9,\"c\"\n";
/// let mut reader = LogReader::new(log.as_bytes());
/// let error = reader.next_record().unwrap().unwrap_err();
/// assert_eq!(error.line(), 3); // time goes backwards
/// let first = reader.next_record().unwrap()?;
/// assert_eq!((first.line, first.t_ms, first.kind), (2, 5, "a"));
/// let second = reader.next_record().unwrap()?;
/// assert_eq!((second.line, second.t_ms, second.kind), (4, 9, "c"));
/// assert!(reader.next_record().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogReader<R> {
    input: R,
    /// The held send's line, and the line being read.
    bufs: [Vec<u8>; 2],
    /// A send read but not yet returned: its time awaits the next line's.
    held: Option<Held>,
    /// A line that fell between the last send returned and the held one: dropped as backwards,
    /// but a second such line after it shows the held send is the stray one.
    doubt: Option<u64>,
    /// The last send's time returned: no later send may be earlier.
    latest_ms: u64,
    line: u64,
    bytes: u64,
    max_line_bytes: usize,
    at_end: bool,
}

/// A send read and held, in `bufs[buf]`.
#[derive(Clone, Debug)]
struct Held {
    buf: usize,
    line: u64,
    t_ms: u64,
    columns: Columns,
}

/// The longest line a reader reads by default.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

pub(super) const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<R: BufRead> LogReader<R> {
    /// A reader of `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            bufs: [Vec::with_capacity(128), Vec::with_capacity(128)],
            held: None,
            doubt: None,
            latest_ms: 0,
            line: 0,
            bytes: 0,
            max_line_bytes: MAX_LINE_BYTES,
            at_end: false,
        }
    }

    /// A reader of `input` that takes over from one that read the lines before it (a faster
    /// reader that met a line it leaves to this one): as if it had read `line` lines, `bytes`
    /// bytes, returned sends up to `latest_ms` and holds `held` (its line, time and kind).
    pub(crate) fn resuming(
        input: R,
        line: u64,
        bytes: u64,
        latest_ms: u64,
        held: Option<(u64, u64, &[u8])>,
    ) -> Self {
        let mut reader = Self::new(input);
        (reader.line, reader.bytes, reader.latest_ms) = (line, bytes, latest_ms);
        if let Some((line, t_ms, kind)) = held {
            reader.bufs[0].extend_from_slice(kind);
            reader.held = Some(Held {
                buf: 0,
                line,
                t_ms,
                columns: Columns {
                    kind: 0..kind.len(),
                    ..Columns::default()
                },
            });
        }
        reader
    }

    /// Reads lines of at most `max_bytes` bytes (the newline not counted); a longer line is a
    /// [`LogError::TooLong`], skipped without being held in memory. 64 KiB by default.
    pub fn with_max_line_bytes(mut self, max_bytes: usize) -> Self {
        self.max_line_bytes = max_bytes;
        self
    }

    /// Bytes read so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next send, a bad line's error, or `None` at the end of the log.
    // Not an `Iterator`: the record borrows the reader's line buffer.
    #[allow(clippy::should_implement_trait)]
    pub fn next_record(&mut self) -> Option<Result<SendRecord<'_>, LogError>> {
        loop {
            if self.at_end {
                let held = self.held.take()?;
                return Some(Ok(self.record(held)));
            }
            let slot = self.held.as_ref().map_or(0, |held| 1 - held.buf);
            let read = match self.read_line(slot) {
                Ok(Some(read)) => read,
                Ok(None) => {
                    self.at_end = true;
                    continue;
                }
                Err(error) => return Some(Err(error)),
            };
            if let Some(result) = self.take(read) {
                return Some(result.map(|held| self.record(held)));
            }
        }
    }

    /// Decides the send just read into `read.buf` against the held one: `None` to read on,
    /// a held send confirmed (returned, and the new one held), or the error of a bad line.
    fn take(&mut self, read: Held) -> Option<Result<Held, LogError>> {
        let Some(held) = self.held.as_ref() else {
            self.held = Some(read);
            return None;
        };
        if read.t_ms >= held.t_ms {
            self.doubt = None;
            let confirmed = self.held.replace(read)?;
            self.latest_ms = confirmed.t_ms;
            return Some(Ok(confirmed));
        }
        if read.t_ms < self.latest_ms || self.doubt.is_none_or(|doubt| read.t_ms < doubt) {
            // Earlier than a send already returned, or the first line to doubt the held one.
            if read.t_ms >= self.latest_ms {
                self.doubt = Some(read.t_ms);
            }
            let previous_ms = if read.t_ms < self.latest_ms {
                self.latest_ms
            } else {
                held.t_ms
            };
            return Some(Err(LogError::Backwards {
                line: read.line,
                t_ms: read.t_ms,
                previous_ms,
            }));
        }
        // A second line in order after the first doubt, both before the held one: the held
        // send is the stray one.
        self.doubt = None;
        let stray = self.held.replace(read)?;
        let next_ms = self.held.as_ref().map_or(0, |held| held.t_ms);
        Some(Err(LogError::Ahead {
            line: stray.line,
            t_ms: stray.t_ms,
            next_ms,
        }))
    }

    fn record(&self, held: Held) -> SendRecord<'_> {
        let buf = &self.bufs[held.buf];
        let text = |range: Range<usize>| std::str::from_utf8(&buf[range]).unwrap_or_default();
        let recipient = held.columns.recipient.map(text).filter(|r| !r.is_empty());
        let slices_text = held.columns.slices.map(text);
        // Checked when the line was read.
        let slices = slices_text.map_or(Slices::none(), |slices| {
            Slices::parse(slices).unwrap_or_default().or_recipient(recipient)
        });
        SendRecord {
            line: held.line,
            t_ms: held.t_ms,
            kind: text(held.columns.kind),
            recipient,
            slices,
            slices_text,
        }
    }

    /// Reads the next send's line into `bufs[slot]`, skipping blank lines and the header:
    /// `None` at the end of the log.
    fn read_line(&mut self, slot: usize) -> Result<Option<Held>, LogError> {
        loop {
            self.line += 1;
            let line = self.line;
            let buf = &mut self.bufs[slot];
            buf.clear();
            let limit = (self.max_line_bytes as u64).saturating_add(1);
            let n = match (&mut self.input).take(limit).read_until(b'\n', buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(source) => return Err(LogError::Io { line, source }),
            };
            self.bytes += n as u64;
            if n as u64 == limit && buf.last() != Some(&b'\n') {
                self.skip_rest_of_line()?;
                return Err(LogError::TooLong {
                    line,
                    max_bytes: self.max_line_bytes,
                });
            }
            let mut text = trim_line_end(buf);
            if line == 1 {
                text = text.strip_prefix(BOM).unwrap_or(text);
            }
            if text.iter().all(u8::is_ascii_whitespace) || (line == 1 && is_header(text)) {
                continue;
            }
            let start = text.as_ptr() as usize - buf.as_ptr() as usize;
            let (t_ms, fields) = parse_line(text, line)?;
            let columns = match fields {
                Fields::At(columns) => columns.shifted(start),
                Fields::Unquoted(bytes, columns) => {
                    buf.clear();
                    buf.extend_from_slice(&bytes);
                    columns
                }
            };
            return Ok(Some(Held {
                buf: slot,
                line,
                t_ms,
                columns,
            }));
        }
    }

    /// Consumes the input up to the next newline, holding none of it.
    fn skip_rest_of_line(&mut self) -> Result<(), LogError> {
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(source) => {
                    return Err(LogError::Io {
                        line: self.line,
                        source,
                    });
                }
            };
            if available.is_empty() {
                return Ok(());
            }
            let (used, done) = match available.iter().position(|&b| b == b'\n') {
                Some(newline) => (newline + 1, true),
                None => (available.len(), false),
            };
            self.input.consume(used);
            self.bytes += used as u64;
            if done {
                return Ok(());
            }
        }
    }
}

#[inline]
pub(super) fn trim_line_end(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r', b'\n'] | [rest @ .., b'\n'] => rest,
        line => line,
    }
}

/// A header's first column is a name: letters, digits after the first letter, `_`.
pub(super) fn is_header(line: &[u8]) -> bool {
    let first = line.split(|&b| b == b',').next().unwrap_or_default().trim_ascii();
    first.first().is_some_and(u8::is_ascii_alphabetic)
        && first.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[inline]
pub(super) fn parse_ms(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |ms, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        ms.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_line_bound_reads_every_line() {
        let log = "0,a\n1,b\n2,a\n";
        let mut reader = LogReader::new(log.as_bytes()).with_max_line_bytes(usize::MAX);
        let mut sends = Vec::new();
        while let Some(record) = reader.next_record() {
            sends.push(record.unwrap().t_ms);
        }
        assert_eq!(sends, [0, 1, 2]);
    }

    #[test]
    fn times_parse_as_whole_milliseconds_only() {
        let cases: [(&str, Option<u64>); 7] = [
            ("0", Some(0)),
            ("1700000000000", Some(1_700_000_000_000)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("", None),
            ("-1", None),
            ("1.5", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_ms(text.as_bytes()), expected, "{text:?}");
        }
    }

    #[test]
    fn only_a_named_first_column_is_a_header() {
        assert!(is_header(b"t_ms,kind"));
        assert!(is_header(b"time,kind,recipient"));
        assert!(!is_header(b"12,kind"));
        assert!(!is_header(b"-,kind"));
        assert!(!is_header(b""));
    }
}
