//! Reading a send log: [`LogReader`] streams `t_ms,kind[,recipient]` lines as [`SendRecord`]s,
//! and names the line of each [`LogError`].

use std::io::{self, BufRead};

/// One send read from a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendRecord<'a> {
    /// The line it was read from (1-based).
    pub line: u64,
    /// When, in milliseconds from the log's origin.
    pub t_ms: u64,
    /// The notification kind.
    pub kind: &'a str,
}

/// A line of a send log that cannot be replayed (or the log could not be read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The line does not have the shape `t_ms,kind[,recipient]`.
    #[error("line {line}: malformed, expected `t_ms,kind[,recipient]`: {what}")]
    Malformed {
        /// The line (1-based).
        line: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The time is not a whole number of milliseconds.
    #[error("line {line}: time `{value}` is not a whole number of milliseconds")]
    Time {
        /// The line (1-based).
        line: u64,
        /// The time as written (shortened if long).
        value: String,
    },
    /// The time is earlier than the line before's: the log must be sorted by time.
    #[error(
        "line {line}: time {t_ms} goes backwards (the line before is at {previous_ms}); sort the log by time"
    )]
    Backwards {
        /// The line (1-based).
        line: u64,
        /// Its time.
        t_ms: u64,
        /// The latest time before it.
        previous_ms: u64,
    },
    /// The kind column is empty.
    #[error("line {line}: the kind is empty")]
    EmptyKind {
        /// The line (1-based).
        line: u64,
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
            | Self::EmptyKind { line }
            | Self::Io { line, .. } => *line,
        }
    }

    /// Whether the error is about the log's content (a bad line), rather than reading it.
    pub fn is_bad_line(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

/// Streams [`SendRecord`]s from a send log: one send a line, `t_ms,kind[,recipient]`, sorted by
/// time. A first line whose time column is a name (`t_ms,kind`) is a header; blank lines are
/// ignored; fields are not quoted. One line buffer is reused for the whole log.
///
/// A bad line is returned as an error naming it, and reading may go on past it.
///
/// ```
/// use spikebreaker::backtest::LogReader;
/// let mut reader = LogReader::new("t_ms,kind,recipient\n5,a,x@example.com\n3,b\n".as_bytes());
/// let first = reader.next_record().unwrap()?;
/// assert_eq!((first.line, first.t_ms, first.kind), (2, 5, "a"));
/// let error = reader.next_record().unwrap().unwrap_err();
/// assert_eq!(error.line(), 3); // time goes backwards
/// assert!(reader.next_record().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    bytes: u64,
    latest_ms: u64,
}

/// A time or kind longer than this is shown shortened in errors.
const SHOWN_MAX: usize = 40;

impl<R: BufRead> LogReader<R> {
    /// A reader of `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            buf: Vec::with_capacity(128),
            line: 0,
            bytes: 0,
            latest_ms: 0,
        }
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
            self.buf.clear();
            self.line += 1;
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => self.bytes += n as u64,
                Err(source) => {
                    return Some(Err(LogError::Io {
                        line: self.line,
                        source,
                    }));
                }
            }
            let text = trim_line_end(&self.buf);
            let ignored = text.iter().all(u8::is_ascii_whitespace) || (self.line == 1 && is_header(text));
            if !ignored {
                break;
            }
        }
        let line = self.line;
        let latest_ms = &mut self.latest_ms;
        Some(
            parse_line(trim_line_end(&self.buf), line).and_then(|(t_ms, kind)| {
                if t_ms < *latest_ms {
                    return Err(LogError::Backwards {
                        line,
                        t_ms,
                        previous_ms: *latest_ms,
                    });
                }
                *latest_ms = t_ms;
                Ok(SendRecord { line, t_ms, kind })
            }),
        )
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A header's first column is a name: letters, digits after the first letter, `_`.
fn is_header(line: &[u8]) -> bool {
    let first = line.split(|&b| b == b',').next().unwrap_or_default().trim_ascii();
    first.first().is_some_and(u8::is_ascii_alphabetic)
        && first.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn parse_line(line: &[u8], number: u64) -> Result<(u64, &str), LogError> {
    let malformed = |what| LogError::Malformed { line: number, what };
    let mut fields = line.splitn(4, |&b| b == b',');
    let time = fields.next().unwrap_or_default().trim_ascii();
    let Some(kind) = fields.next() else {
        return Err(malformed("no comma after the time"));
    };
    let _recipient = fields.next();
    if fields.next().is_some() {
        return Err(malformed("more than three columns"));
    }
    let t_ms = parse_ms(time).ok_or_else(|| LogError::Time {
        line: number,
        value: shown(time),
    })?;
    let kind = std::str::from_utf8(kind.trim_ascii()).map_err(|_| malformed("the kind is not UTF-8"))?;
    if kind.is_empty() {
        return Err(LogError::EmptyKind { line: number });
    }
    Ok((t_ms, kind))
}

fn parse_ms(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |ms, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        ms.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(SHOWN_MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn lines_parse_into_time_and_kind() {
        assert_eq!(parse_line(b"12,a.b", 1).unwrap(), (12, "a.b"));
        assert_eq!(parse_line(b" 12 , a.b , r@x", 1).unwrap(), (12, "a.b"));
        assert!(matches!(
            parse_line(b"12", 4),
            Err(LogError::Malformed { line: 4, .. })
        ));
        assert!(matches!(
            parse_line(b"1,a,b,c", 4),
            Err(LogError::Malformed { .. })
        ));
        assert!(matches!(
            parse_line(b"12, ", 4),
            Err(LogError::EmptyKind { line: 4 })
        ));
        assert!(matches!(
            parse_line(b"x1,a", 4),
            Err(LogError::Time { line: 4, .. })
        ));
        assert!(matches!(
            parse_line(b"1,\xff", 4),
            Err(LogError::Malformed { .. })
        ));
    }

    #[test]
    fn only_a_named_first_column_is_a_header() {
        assert!(is_header(b"t_ms,kind"));
        assert!(is_header(b"time,kind,recipient"));
        assert!(!is_header(b"12,kind"));
        assert!(!is_header(b"-,kind"));
        assert!(!is_header(b""));
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let long = "9".repeat(100);
        assert_eq!(shown(long.as_bytes()).len(), SHOWN_MAX + 3);
        assert_eq!(shown(b"12x"), "12x");
    }
}
