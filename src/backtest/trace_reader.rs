//! Reading a whole send log into a [`Trace`], fast: the log is read in blocks, each cut into
//! chunks at line ends and parsed in parallel (with the `parallel` feature) into times and
//! interned kinds, with no allocation a line. A chunk that holds anything but plain sends in
//! time order (a quote, a bad, late or over-long line) hands the log from there to
//! [`LogReader`], which reads the rest exactly as it reads any log: line numbers, stray times
//! and errors are the same as a [`LogReader`] from the first line gives.

use std::collections::HashMap;
use std::io::{BufReader, Cursor, Read};

use memchr::memchr;

use super::log::{BOM, is_header, parse_ms};
use super::{LogError, LogReader, Trace, each};
use crate::name;

/// Bytes read at a time.
const BLOCK_BYTES: usize = 8 << 20;
/// Chunks a block is cut into, for the cores to share.
const CHUNKS: usize = 16;
/// Sends between progress reports once [`LogReader`] reads.
const PROGRESS_EVERY: u64 = 1 << 16;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// Told of each bad line skipped.
type Skipped<'a> = dyn FnMut(&LogError) + 'a;

/// Reads a send log into a [`Trace`] ([`Trace::read`] with the defaults).
///
/// ```
/// use spikebreaker::backtest::TraceReader;
///
/// let log = "t_ms,kind\n0,a\n5,b\nten,a\n9,a\n";
/// let mut skipped = Vec::new();
/// let trace = TraceReader::new(log.as_bytes())
///     .skip_bad_lines(|error| skipped.push(error.line()))
///     .read()?;
/// assert_eq!((trace.sends(), trace.skipped_lines()), (3, 1));
/// assert_eq!(skipped, [4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TraceReader<'a, R> {
    input: R,
    max_line_bytes: usize,
    skipped: Option<Box<Skipped<'a>>>,
    progress: Option<Box<dyn FnMut(u64) + 'a>>,
}

impl<R> std::fmt::Debug for TraceReader<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceReader")
            .field("max_line_bytes", &self.max_line_bytes)
            .field("skips_bad_lines", &self.skipped.is_some())
            .finish_non_exhaustive()
    }
}

/// One chunk parsed: each kind's send times (kinds as numbered in the chunk), and its last two
/// sends.
struct Chunk<'a> {
    names: Vec<&'a [u8]>,
    times: Vec<Vec<u64>>,
    lines: u64,
    /// Whether a line is not blank (a header may no longer come after it).
    started: bool,
    /// The last send's line (counted from the chunk's start), time and kind.
    last: Option<(u64, u64, u32)>,
    /// The time of the send before it, if the chunk holds one.
    before_last_ms: Option<u64>,
}

/// The last send taken, and the time of the one before: what a [`LogReader`] that had read the
/// same lines would hold.
#[derive(Clone, Copy)]
struct Last {
    line: u64,
    t_ms: u64,
    kind: u32,
    before_ms: u64,
}

impl<'a, R: Read> TraceReader<'a, R> {
    /// A reader of `input`, stopping at the first bad line.
    pub fn new(input: R) -> Self {
        Self {
            input,
            max_line_bytes: super::log::MAX_LINE_BYTES,
            skipped: None,
            progress: None,
        }
    }

    /// Reads lines of at most `max_bytes` bytes; a longer line is a bad line
    /// ([`LogReader::with_max_line_bytes`]).
    pub fn with_max_line_bytes(mut self, max_bytes: usize) -> Self {
        self.max_line_bytes = max_bytes;
        self
    }

    /// Skips bad lines instead of stopping at the first, calling `skipped` with each; they are
    /// counted in [`Trace::skipped_lines`]. An error reading the log still stops it.
    pub fn skip_bad_lines(mut self, skipped: impl FnMut(&LogError) + 'a) -> Self {
        self.skipped = Some(Box::new(skipped));
        self
    }

    /// Calls `progress` with the bytes read so far, now and then.
    pub fn on_progress(mut self, progress: impl FnMut(u64) + 'a) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Reads the whole log.
    pub fn read(mut self) -> Result<Trace, LogError> {
        let mut trace = Trace::default();
        let (mut block, mut carry) = (Vec::with_capacity(BLOCK_BYTES), Vec::new());
        let (mut lines, mut bytes, mut started) = (0u64, 0u64, false);
        let mut last: Option<Last> = None;
        loop {
            block.clear();
            block.append(&mut carry);
            let wanted = BLOCK_BYTES.saturating_sub(block.len()).max(1 << 16) as u64;
            let read = (&mut self.input)
                .take(wanted)
                .read_to_end(&mut block)
                .map_err(|source| LogError::Io {
                    line: lines + 1,
                    source,
                })?;
            let at_end = (read as u64) < wanted;
            if !at_end {
                match block.iter().rposition(|&b| b == b'\n') {
                    Some(end) => carry.extend_from_slice(&block[end + 1..]),
                    // A block without a line end: an over-long line, for the log reader.
                    None => return self.hand_over(trace, block, carry, (lines, bytes, started), last),
                }
                block.truncate(block.len() - carry.len());
            }
            let chunks = cut(&block, CHUNKS);
            let max_line_bytes = self.max_line_bytes;
            let first = lines == 0;
            let parsed = each(&chunks, |&(start, end)| {
                parse(&block[start..end], first && start == 0, max_line_bytes)
            });
            // A header after blank lines that reach past the first chunk is left to the log
            // reader, as any line this reader does not take.
            for (&(start, end), chunk) in chunks.iter().zip(parsed) {
                let in_order = chunk.as_ref().is_some_and(|chunk| {
                    let first_ms = chunk.times.iter().filter_map(|times| times.first()).min();
                    first_ms.is_none_or(|&t| last.is_none_or(|last| t >= last.t_ms))
                });
                let chunk = match chunk {
                    Some(chunk) if in_order => chunk,
                    _ => {
                        let rest = block.split_off(start);
                        return self.hand_over(trace, rest, carry, (lines, bytes, started), last);
                    }
                };
                let mut ids = Vec::with_capacity(chunk.names.len());
                for (name, times) in chunk.names.iter().zip(&chunk.times) {
                    let id = trace.intern(name);
                    trace.extend(id, times);
                    ids.push(id);
                }
                if let Some((line, t_ms, local)) = chunk.last {
                    last = Some(Last {
                        line: lines + line,
                        t_ms,
                        kind: ids[local as usize],
                        before_ms: chunk.before_last_ms.or(last.map(|last| last.t_ms)).unwrap_or(0),
                    });
                }
                lines += chunk.lines;
                bytes += (end - start) as u64;
                started |= chunk.started;
            }
            if let Some(progress) = &mut self.progress {
                progress(bytes);
            }
            if at_end {
                return Ok(trace);
            }
        }
    }

    /// Reads the rest of the log with a [`LogReader`], from `rest` (the lines not taken yet),
    /// `carry` and what is left of the input: the reader starts where a [`LogReader`] reading
    /// from the first line would stand (`read`: the lines and bytes taken, and whether a line
    /// among them was not blank), holding the last send taken.
    fn hand_over(
        mut self,
        mut trace: Trace,
        rest: Vec<u8>,
        carry: Vec<u8>,
        read: (u64, u64, bool),
        last: Option<Last>,
    ) -> Result<Trace, LogError> {
        let held_kind: Vec<u8>;
        let (latest_ms, held) = match last {
            Some(last) => {
                trace.pop(last.kind);
                held_kind = trace.name(last.kind).as_bytes().to_vec();
                (last.before_ms, Some((last.line, last.t_ms, held_kind.as_slice())))
            }
            None => (0, None),
        };
        let input = BufReader::with_capacity(
            1 << 16,
            Cursor::new(rest).chain(Cursor::new(carry)).chain(self.input),
        );
        let mut reader =
            LogReader::resuming(input, read, latest_ms, held).with_max_line_bytes(self.max_line_bytes);
        let mut sends = 0u64;
        while let Some(record) = reader.next_record() {
            match record {
                Ok(record) => {
                    let kind = trace.intern(record.kind.as_bytes());
                    match record.slices_text {
                        Some(slices) => {
                            trace.push_sliced(kind, record.t_ms, record.recipient, slices);
                        }
                        None => trace.push(kind, record.t_ms),
                    }
                }
                Err(error) if error.is_bad_line() => match &mut self.skipped {
                    Some(skipped) => {
                        skipped(&error);
                        trace.skipped_lines += 1;
                    }
                    None => return Err(error),
                },
                Err(error) => return Err(error),
            }
            sends += 1;
            if sends % PROGRESS_EVERY == 0 {
                if let Some(progress) = &mut self.progress {
                    progress(reader.bytes_read());
                }
            }
        }
        if let Some(progress) = &mut self.progress {
            progress(reader.bytes_read());
        }
        Ok(trace)
    }
}

/// `block` cut into about `parts` ranges, each ending at a line end (the last at the block's).
fn cut(block: &[u8], parts: usize) -> Vec<(usize, usize)> {
    let step = (block.len() / parts).max(1);
    let mut ranges = Vec::with_capacity(parts + 1);
    let mut start = 0;
    while start < block.len() {
        let end = match memchr(b'\n', &block[(start + step).min(block.len())..]) {
            Some(at) if start + step < block.len() => start + step + at + 1,
            _ => block.len(),
        };
        ranges.push((start, end));
        start = end;
    }
    ranges
}

/// The sends of a chunk of whole lines, or `None` if it holds a line the fast path does not
/// take: a quote, a bad line, a line longer than `max_line_bytes`, a time earlier than the line
/// before. `first` marks the chunk that starts the log, which may open with a byte-order mark
/// and whose first line that is not blank may be a header.
fn parse(chunk: &[u8], first: bool, max_line_bytes: usize) -> Option<Chunk<'_>> {
    if memchr(b'"', chunk).is_some() {
        return None;
    }
    let mut parsed = Chunk {
        names: Vec::new(),
        times: Vec::new(),
        lines: 0,
        started: false,
        last: None,
        before_last_ms: None,
    };
    let mut index: FastMap<&[u8], u32> = FastMap::default();
    let mut previous_ms = 0;
    let mut rest = chunk;
    while !rest.is_empty() {
        let (mut line, next) = match memchr(b'\n', rest) {
            Some(end) => {
                let line = &rest[..end];
                (line.strip_suffix(b"\r").unwrap_or(line), &rest[end + 1..])
            }
            None => (rest, &[][..]),
        };
        rest = next;
        parsed.lines += 1;
        if line.len() > max_line_bytes {
            return None;
        }
        if first && parsed.lines == 1 {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        let may_be_header = first && !parsed.started;
        let (t_ms, kind) = match plain_fields(line) {
            Some(send) => send,
            None if line.iter().all(u8::is_ascii_whitespace) => continue,
            None if may_be_header && is_header(line) => {
                parsed.started = true;
                continue;
            }
            None => fields(line)?,
        };
        parsed.started = true;
        if t_ms < previous_ms {
            return None;
        }
        previous_ms = t_ms;
        // Most chunks hold a few kinds: a look along them beats hashing every line.
        let id = match parsed.names.iter().take(8).position(|&name| name == kind) {
            Some(id) => id as u32,
            None => {
                let next_id = parsed.names.len() as u32;
                let id = *index.entry(kind).or_insert(next_id);
                if id == next_id {
                    parsed.names.push(kind);
                    parsed.times.push(Vec::new());
                }
                id
            }
        };
        parsed.times[id as usize].push(t_ms);
        parsed.before_last_ms = parsed.last.map(|last| last.1);
        parsed.last = Some((parsed.lines, t_ms, id));
    }
    Some(parsed)
}

/// The time and kind of a line as most are, `digits,kind[,recipient]` with a kind of printable
/// ASCII: `None` for anything else, which [`fields`] looks at. A line with slices (a fourth
/// column) is left to the log reader, which keeps them.
#[inline]
fn plain_fields(line: &[u8]) -> Option<(u64, &[u8])> {
    let comma = line.iter().position(|&b| !b.is_ascii_digit())?;
    if comma == 0 || comma > 19 || line[comma] != b',' {
        return None;
    }
    let t_ms = line[..comma]
        .iter()
        .fold(0u64, |t, &d| t * 10 + u64::from(d - b'0'));
    let after = &line[comma + 1..];
    let end = after
        .iter()
        .position(|&b| b == b',' || !b.is_ascii_graphic())
        .unwrap_or(after.len());
    let (kind, rest) = after.split_at(end);
    let valid = !kind.is_empty()
        && kind.len() <= name::MAX_KIND_NAME_BYTES
        && match rest.split_first() {
            None => true,
            Some((b',', recipient)) => memchr(b',', recipient).is_none(),
            Some(_) => false,
        };
    valid.then_some((t_ms, kind))
}

/// A line's time and kind: `t_ms,kind[,recipient]`, no quotes, the kind valid.
fn fields(line: &[u8]) -> Option<(u64, &[u8])> {
    let comma = memchr(b',', line)?;
    let t_ms = parse_ms(line[..comma].trim_ascii())?;
    let after = &line[comma + 1..];
    let kind = match memchr(b',', after) {
        Some(end) => {
            if memchr(b',', &after[end + 1..]).is_some() {
                return None;
            }
            &after[..end]
        }
        None => after,
    };
    let kind = kind.trim_ascii();
    let valid =
        name::plain(kind) || std::str::from_utf8(kind).is_ok_and(|text| name::problem(text).is_none());
    valid.then_some((t_ms, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_line_ends() {
        let block = b"1,a\n22,bb\n333,ccc\n4,d";
        let ranges = cut(block, 3);
        assert_eq!(ranges.first().map(|r| r.0), Some(0));
        assert_eq!(ranges.last().map(|r| r.1), Some(block.len()));
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
            assert_eq!(block[pair[0].1 - 1], b'\n');
        }
    }

    #[test]
    fn plain_lines_parse_and_the_rest_is_left_to_the_log_reader() {
        let chunk = parse(b"\xEF\xBB\xBFt_ms,kind\n1,a\n\n2, b ,r@x\r\n2,a\n", true, 100).unwrap();
        assert_eq!(chunk.times, [vec![1, 2], vec![2]]);
        assert_eq!(chunk.names, [&b"a"[..], b"b"]);
        assert_eq!(
            (chunk.lines, chunk.last, chunk.before_last_ms),
            (5, Some((5, 2, 0)), Some(2))
        );
        for line in [
            &b"1,\"a\"\n"[..],
            b"x,a\n",
            b"1,a,b,c\n",
            b"1,\n",
            b"2,a\n1,a\n",
            b"1,a\x1b\n",
            b"1,aaaaaaaaaaa\n",
        ] {
            assert!(parse(line, false, 10).is_none(), "{line:?}");
        }
        assert!(
            parse(b"t_ms,kind\n", false, 100).is_none(),
            "a header only where the log starts"
        );
        let after_blank_lines = parse(b"\n \nt_ms,kind\n1,a\n", true, 100).unwrap();
        assert_eq!((after_blank_lines.lines, after_blank_lines.started), (4, true));
        assert_eq!(after_blank_lines.times, [vec![1]]);
        assert!(
            parse(b"1,a\nt_ms,kind\n", true, 100).is_none(),
            "a header after a send"
        );
    }
}
