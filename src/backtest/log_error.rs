//! [`LogError`]: a send-log line that cannot be replayed, named by its line.

use std::io;

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
    /// The lines after it are read as usual.
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
    /// The line is longer than the reader reads
    /// ([`LogReader::with_max_line_bytes`](super::LogReader::with_max_line_bytes)); it is skipped
    /// whole, without being held in memory.
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
