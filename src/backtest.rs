//! Replaying a send log against a configuration: what the breaker would have done to past
//! traffic, decided by the same engine on a [`ManualClock`].
//!
//! [`LogReader`] streams a log of `t_ms,kind[,recipient]` lines; [`Backtest`] sets the clock to
//! each send's time and checks it through a cached [`KindHandle`], tallying the decisions and
//! recording every transition; [`Backtest::report`] gives the result as serde data.
//!
//! ```
//! use spikebreaker::{Backtest, Config, LogReader};
//!
//! let log = "t_ms,kind\n0,email.welcome\n1000,email.welcome\n1500,sms.login_code\n";
//! let mut backtest = Backtest::new(Config::default())?;
//! let mut reader = LogReader::new(log.as_bytes());
//! while let Some(record) = reader.next_record() {
//!     let record = record?;
//!     let _decision = backtest.send(record.t_ms, record.kind);
//! }
//! let report = backtest.report();
//! assert_eq!(report.events, 3);
//! assert_eq!(report.kinds["email.welcome"].allowed, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::breaker::{Breaker, KindHandle};
use crate::clock::ManualClock;
use crate::config::Config;
use crate::error::Error;
use crate::event::Event;
use crate::state::{Decision, Reason, State};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Replays sends through a [`Breaker`] on a [`ManualClock`], tallying every decision.
///
/// Each send costs a clock set, a look-up of the kind's cached handle and the handle's
/// [`check`](KindHandle::check): the same code path a service runs. Like a service that checks
/// by name, the replay holds no kind the registry would forget for being idle (see
/// [`Config::evict_idle_secs`]), and looks a name sent to the overflow kind up again on every
/// send, so that kinds come and go as they would in the service.
pub struct Backtest {
    breaker: Breaker<ManualClock>,
    clock: ManualClock,
    /// Input kind names with a handle held: kinds of their own, sent recently.
    slots: FastMap<Box<str>, Slot>,
    /// One tally per engine kind name (kinds past `max_kinds` share the overflow kind's).
    tallies: Vec<Tally>,
    /// Engine kind name to its place in `tallies`.
    tally_of: FastMap<Arc<str>, usize>,
    /// When `slots` was last swept of idle kinds (`None`: never).
    last_sweep_ms: Option<u64>,
    events: Arc<Mutex<Vec<Event>>>,
    sends: u64,
    skipped_lines: u64,
}

/// A held handle, the tally it counts into and when it was last sent.
#[derive(Debug)]
struct Slot {
    handle: KindHandle<ManualClock>,
    tally: usize,
    last_ms: u64,
}

#[derive(Debug)]
struct Tally {
    name: Arc<str>,
    allowed: u64,
    blocked: u64,
    /// The kind's state when it was last seen, for the report once no handle is held.
    state: State,
}

/// The replay sweeps its handles at most this often (log milliseconds): as often as a full
/// registry looks for idle kinds, so that the sweep costs nothing per send.
const SWEEP_EVERY_MS: u64 = 1_000;

impl std::fmt::Debug for Backtest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backtest")
            .field("sends", &self.sends)
            .field("kinds", &self.tallies.len())
            .finish_non_exhaustive()
    }
}

impl Backtest {
    /// A replay of `config`, starting with nothing learned, at time 0.
    pub fn new(config: Config) -> Result<Self, Error> {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(config, clock.clone())?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        breaker.subscribe(move |event| sink.lock().push(event.clone()));
        Ok(Self {
            breaker,
            clock,
            slots: FastMap::default(),
            tallies: Vec::new(),
            tally_of: FastMap::default(),
            last_sweep_ms: None,
            events,
            sends: 0,
            skipped_lines: 0,
        })
    }

    /// Decides one send of `kind` at `t_ms` (milliseconds on the replay's clock), as the breaker
    /// would have. Times should not go backwards; [`LogReader`] refuses logs where they do.
    #[inline]
    pub fn send(&mut self, t_ms: u64, kind: &str) -> Decision {
        self.clock.set(t_ms);
        self.sends += 1;
        let Some(slot) = self.slots.get_mut(kind) else {
            return self.send_uncached(t_ms, kind);
        };
        slot.last_ms = t_ms;
        let decision = slot.handle.check();
        count(&mut self.tallies[slot.tally], decision);
        decision
    }

    /// A send of a kind with no handle held: new, idle for a while, or sent to the overflow kind.
    #[cold]
    fn send_uncached(&mut self, t_ms: u64, kind: &str) -> Decision {
        self.sweep(t_ms);
        let handle = self.breaker.kind(kind);
        let decision = handle.check();
        let tally = self.tally_for(handle.name());
        count(&mut self.tallies[tally], decision);
        self.tallies[tally].state = handle.state();
        // A name sent to the overflow kind is not cached: it is looked up again on its next
        // send, as `Breaker::check` would, and gets its own kind once there is room.
        if **handle.name() == *kind {
            let slot = Slot {
                handle,
                tally,
                last_ms: t_ms,
            };
            self.slots.insert(kind.into(), slot);
        }
        decision
    }

    fn tally_for(&mut self, name: &Arc<str>) -> usize {
        if let Some(&tally) = self.tally_of.get(name) {
            return tally;
        }
        self.tally_of.insert(Arc::clone(name), self.tallies.len());
        self.tallies.push(Tally {
            name: Arc::clone(name),
            allowed: 0,
            blocked: 0,
            state: State::Closed,
        });
        self.tallies.len() - 1
    }

    /// Lets go of the handles of kinds not sent for half of `evict_idle_secs`, at most once a
    /// [`SWEEP_EVERY_MS`], before any look-up that may make the registry sweep. The registry only
    /// forgets a kind held by no handle; it judges idleness by the start of the kind's last
    /// bucket (at most a twelfth of a window, so of `evict_idle_secs`, before the last send) and
    /// sweeps at most once a second, so half the idle time lets go of every kind it would forget,
    /// with room to spare. Letting go of a kind it would not forget costs one look-up on its next
    /// send, which finds the same kind.
    fn sweep(&mut self, now_ms: u64) {
        if self
            .last_sweep_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < SWEEP_EVERY_MS)
        {
            return;
        }
        self.last_sweep_ms = Some(now_ms);
        let release_ms = self.breaker.config().evict_idle_secs.saturating_mul(1000) / 2;
        let tallies = &mut self.tallies;
        self.slots.retain(|_, slot| {
            let keep = now_ms.saturating_sub(slot.last_ms) < release_ms;
            if !keep {
                tallies[slot.tally].state = slot.handle.state();
            }
            keep
        });
    }

    /// Counts one input line that was skipped as bad, for the report.
    pub fn skip_line(&mut self) {
        self.skipped_lines += 1;
    }

    /// The breaker being replayed (for its status, snapshot or operator controls).
    pub fn breaker(&self) -> &Breaker<ManualClock> {
        &self.breaker
    }

    /// What happened so far: sends per kind, decisions and transitions.
    pub fn report(&self) -> BacktestReport {
        let mut kinds: BTreeMap<String, KindReport> = self
            .tallies
            .iter()
            .map(|tally| {
                let report = KindReport {
                    attempted: tally.allowed + tally.blocked,
                    allowed: tally.allowed,
                    blocked: tally.blocked,
                    trips: 0,
                    state: tally.state,
                    transitions: Vec::new(),
                };
                (tally.name.to_string(), report)
            })
            .collect();
        for slot in self.slots.values() {
            if let Some(kind) = kinds.get_mut(&**slot.handle.name()) {
                kind.state = slot.handle.state();
            }
        }
        for event in self.events.lock().iter() {
            let kind = kinds.entry(event.kind.to_string()).or_default();
            kind.trips += u64::from(event.is_trip());
            kind.transitions.push(Transition {
                at_ms: event.at_ms,
                from: event.from,
                to: event.to,
                reason: event.reason,
                window_count: event.window_count,
                threshold: event.threshold,
            });
        }
        BacktestReport {
            events: self.sends,
            skipped_lines: self.skipped_lines,
            kinds,
        }
    }
}

fn count(tally: &mut Tally, decision: Decision) {
    match decision {
        Decision::Allowed => tally.allowed += 1,
        Decision::Blocked(_) => tally.blocked += 1,
    }
}

/// The outcome of a replay, as the `spikebreaker backtest` tool prints it (JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BacktestReport {
    /// Sends replayed.
    pub events: u64,
    /// Input lines skipped as bad.
    pub skipped_lines: u64,
    /// Per kind, by name.
    pub kinds: BTreeMap<String, KindReport>,
}

/// One kind's sends and transitions in a replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KindReport {
    /// Sends of the kind.
    pub attempted: u64,
    /// Sends the breaker let through.
    pub allowed: u64,
    /// Sends the breaker blocked.
    pub blocked: u64,
    /// Moves into the open state.
    pub trips: u64,
    /// The state at the end of the replay.
    pub state: State,
    /// Every transition, in time order.
    pub transitions: Vec<Transition>,
}

impl Default for KindReport {
    fn default() -> Self {
        Self {
            attempted: 0,
            allowed: 0,
            blocked: 0,
            trips: 0,
            state: State::Closed,
            transitions: Vec::new(),
        }
    }
}

/// A kind changed state during a replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transition {
    /// When, on the replay's clock (milliseconds).
    pub at_ms: u64,
    /// The state it left.
    pub from: State,
    /// The state it entered.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// Sends in the window at the time.
    pub window_count: u64,
    /// The threshold in force at the time.
    pub threshold: u64,
}

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
/// use spikebreaker::LogReader;
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
