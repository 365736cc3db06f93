//! Reading a send log: [`LogReader`] streams `t_ms,kind[,recipient[,slices]]` lines as
//! [`SendRecord`]s, and names the line of each [`LogError`](super::LogError).

use std::io::{BufRead, Read};
use std::ops::Range;

use super::LogError;
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

/// Streams [`SendRecord`]s from a send log: one send a line, `t_ms,kind[,recipient[,slices]]`,
/// sorted by time; the slices are `name=value` pairs separated by `;`
/// (`1700000000000,sms.login_code,+447700900123,prefix=+447;tenant=acme`), the name `content`
/// giving the content key of the repeat check. The first line that is not blank is a header if its time column is a name
/// (`t_ms,kind`); a UTF-8 byte-order mark may open the log; blank lines are ignored; a field may
/// be quoted as in CSV (`"a, b"`, `""` for a quote), within its line. Lines are read up to 64 KiB
/// ([`with_max_line_bytes`](Self::with_max_line_bytes)), into three buffers reused for the whole
/// log, so memory stays flat however long the log or any line is.
///
/// A bad line is returned as an error naming it, and reading may go on past it. A skipped line
/// never moves the log's clock: each send is held until the line after it confirms its time, so
/// that one stray time far ahead (a typo) is what is refused, rather than every line after it as
/// "backwards". A line earlier than the send held is held too, until the next line tells which
/// of the two is wrong: only the wrong one is skipped. A send is returned when a later line
/// confirms it (the last at the end of the log).
///
/// ```
/// use spikebreaker::backtest::LogReader;
/// let log = "t_ms,kind,recipient\n5,a,\"Doe, Jo\" <jo@example.com>\n3,b\n9,\"c\"\n";
/// let mut reader = LogReader::new(log.as_bytes());
/// let first = reader.next_record().unwrap()?; // once the 9 confirms it
/// assert_eq!((first.line, first.t_ms, first.kind), (2, 5, "a"));
/// let error = reader.next_record().unwrap().unwrap_err();
/// assert_eq!(error.line(), 3); // so the 3 went backwards
/// let second = reader.next_record().unwrap()?;
/// assert_eq!((second.line, second.t_ms, second.kind), (4, 9, "c"));
/// assert!(reader.next_record().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogReader<R> {
    input: R,
    /// The held send's line, the doubted one's, and the line being read.
    bufs: [Vec<u8>; 3],
    /// A send read but not yet returned: its time awaits the next line's.
    held: Option<Held>,
    /// A send between the last one returned and the held one: either it is early, or the held
    /// one is a stray time; the next line tells.
    doubt: Option<Held>,
    /// What the line that settled a doubt decided besides what it returned: given next.
    settled: Option<Result<Held, LogError>>,
    /// The last send's time returned: no later send may be earlier.
    latest_ms: u64,
    /// Whether a line that is not blank was read: a header may come only before.
    started: bool,
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
            bufs: [0; 3].map(|_| Vec::with_capacity(128)),
            held: None,
            doubt: None,
            settled: None,
            latest_ms: 0,
            started: false,
            line: 0,
            bytes: 0,
            max_line_bytes: MAX_LINE_BYTES,
            at_end: false,
        }
    }

    /// A reader of `input` that takes over from one that read the lines before it (a faster
    /// reader that met a line it leaves to this one): as if it had read `line` lines, `bytes`
    /// bytes, `started` (a line that is not blank among them), returned sends up to `latest_ms`
    /// and holds `held` (its line, time and kind).
    pub(crate) fn resuming(
        input: R,
        (line, bytes, started): (u64, u64, bool),
        latest_ms: u64,
        held: Option<(u64, u64, &[u8])>,
    ) -> Self {
        let mut reader = Self::new(input);
        (reader.line, reader.bytes, reader.started, reader.latest_ms) = (line, bytes, started, latest_ms);
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
            if let Some(settled) = self.settled.take() {
                return Some(settled.map(|held| self.record(held)));
            }
            if self.at_end {
                let held = self.held.take()?;
                // Nothing after a doubted line tells otherwise: it is the early one.
                if let Some(doubt) = self.doubt.take() {
                    self.settled = Some(Err(backwards(&doubt, held.t_ms)));
                }
                return Some(Ok(self.record(held)));
            }
            let slot = self.free_buf();
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

    /// The buffer neither the held nor the doubted send is in.
    fn free_buf(&self) -> usize {
        let taken = |held: &Option<Held>, buf| held.as_ref().is_some_and(|held| held.buf == buf);
        (0..2)
            .find(|&buf| !taken(&self.held, buf) && !taken(&self.doubt, buf))
            .unwrap_or(2)
    }

    /// Decides the send just read against the held one (and the doubted one, if any): `None` to
    /// read on, a held send confirmed (returned, and the new one held), or the error of a bad
    /// line. A line that settles a doubt decides two lines: the second is kept in `settled`.
    fn take(&mut self, read: Held) -> Option<Result<Held, LogError>> {
        let Some(held) = self.held.as_ref() else {
            self.held = Some(read);
            return None;
        };
        if read.t_ms >= held.t_ms {
            // The held send is confirmed; a doubted line before this one was the early one.
            if let Some(doubt) = self.doubt.take() {
                self.settled = Some(Err(backwards(&doubt, held.t_ms)));
            }
            let confirmed = self.held.replace(read)?;
            self.latest_ms = confirmed.t_ms;
            return Some(Ok(confirmed));
        }
        if read.t_ms < self.latest_ms {
            // Earlier than a send already returned: this line is wrong, whatever else is.
            return Some(Err(backwards(&read, self.latest_ms)));
        }
        let held_ms = held.t_ms;
        match self.doubt.as_ref() {
            None => {
                self.doubt = Some(read);
                None
            }
            Some(doubt) if read.t_ms < doubt.t_ms => {
                // Earlier than the doubted line too: that one goes, this one is doubted instead.
                let early = self.doubt.replace(read)?;
                Some(Err(backwards(&early, held_ms)))
            }
            Some(_) => {
                // A second line in order after the doubted one, both before the held one: the
                // held send is the stray one, and the doubted one is confirmed.
                let doubt = self.doubt.take()?;
                let stray = self.held.replace(read)?;
                self.latest_ms = doubt.t_ms;
                let next_ms = doubt.t_ms;
                self.settled = Some(Ok(doubt));
                Some(Err(LogError::Ahead {
                    line: stray.line,
                    t_ms: stray.t_ms,
                    next_ms,
                }))
            }
        }
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

    /// Reads the next send's line into `bufs[slot]`, skipping blank lines and the header (the
    /// first line that is not blank, if it looks like one): `None` at the end of the log.
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
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !std::mem::replace(&mut self.started, true) && is_header(text) {
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

/// `send` refused as earlier than a send at `previous_ms` before it.
fn backwards(send: &Held, previous_ms: u64) -> LogError {
    LogError::Backwards {
        line: send.line,
        t_ms: send.t_ms,
        previous_ms,
    }
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
