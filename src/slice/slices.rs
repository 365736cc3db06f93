//! [`Slices`]: what a notification names below its kind (`country=GB`, `tenant=acme`), whom it is
//! for and what it says, for the slice tracker and the repeat check; [`SliceId`], one slice named
//! in a refusal, an event or a quarantined item.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The most `dimension=value` pairs one notification names; more are ignored (and counted in the
/// kind's status).
pub const MAX_SLICES: usize = 8;
/// The longest dimension name, in bytes.
pub const MAX_DIMENSION_BYTES: usize = 32;
/// The longest slice value, in bytes of UTF-8.
pub const MAX_VALUE_BYTES: usize = 64;
/// The dimension name that carries a content key (see [`Slices::content_of`]) rather than a
/// slice: `content=…` in a send log or a descriptor.
pub const CONTENT: &str = "content";

/// The seed of every hash the slice tracker takes (content keys, repeat keys, sketch rows):
/// fixed, so that a replay decides exactly what it decided before.
const SEED: u64 = 0x5EED_51CE_D0E5_CAFE;

/// The hash of `value` the tracker uses: fixed-seeded, the same in every run of a build.
pub(crate) fn hash_of(value: &(impl Hash + ?Sized)) -> u64 {
    foldhash::quality::FixedState::with_seed(SEED).hash_one(value)
}

/// What a notification names below its kind: slices (`dimension=value` pairs: `country=GB`,
/// `prefix=+447`, `tenant=acme`), whom it is for, and optionally a content key, for the slice
/// tracker and the repeat check. [`Notification::slices`](crate::Notification::slices) returns
/// it; [`Slices::none`], the default, opts the notification out of both, so that a notification
/// that names nothing costs what it always did.
///
/// - Each **slice** is tracked per kind and dimension (its share of the kind learned, a runaway of
///   one value refused while the rest of the kind flows); see
///   [guide::slices](crate::guide::slices).
/// - The **recipient** (from [`Notification::recipient`](crate::Notification::recipient), or
///   [`recipient`](Self::recipient)) and the **content key** make the repeat check: the same
///   notification to the same recipient again and again is refused past `repeats.max` in
///   `repeats.window_secs`. Without a content key, every notification of the kind to that
///   recipient counts as the same.
///
/// ```
/// use spikebreaker::guard::Slices;
///
/// let slices = Slices::new()
///     .with("country", "GB")
///     .with("tenant", "acme")
///     .recipient("+447700900123")
///     .content_of(&("login", 4711));
/// assert_eq!(slices.iter().collect::<Vec<_>>(), [("country", "GB"), ("tenant", "acme")]);
/// assert!(!slices.is_none());
/// assert!(Slices::none().is_none());
/// ```
#[derive(Clone, Copy, Default)]
pub struct Slices<'a> {
    opted_in: bool,
    len: u8,
    /// Pairs beyond [`MAX_SLICES`] (ignored).
    dropped: u8,
    pairs: [(&'a str, &'a str); MAX_SLICES],
    recipient: Option<&'a str>,
    content: Option<u64>,
}

impl fmt::Debug for Slices<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.opted_in {
            return f.write_str("Slices::none()");
        }
        f.debug_struct("Slices")
            .field("pairs", &self.pairs())
            .field("recipient", &self.recipient.is_some())
            .field("content", &self.content.is_some())
            .finish()
    }
}

impl PartialEq for Slices<'_> {
    fn eq(&self, other: &Self) -> bool {
        (
            self.opted_in,
            self.pairs(),
            self.dropped,
            self.recipient,
            self.content,
        ) == (
            other.opted_in,
            other.pairs(),
            other.dropped,
            other.recipient,
            other.content,
        )
    }
}

impl Eq for Slices<'_> {}

impl<'a> Slices<'a> {
    /// Nothing below the kind: no slice tracked, no repeat check. The default.
    pub const fn none() -> Self {
        Self {
            opted_in: false,
            len: 0,
            dropped: 0,
            pairs: [("", ""); MAX_SLICES],
            recipient: None,
            content: None,
        }
    }

    /// Opts in with nothing named yet: add slices with [`with`](Self::with). A notification that
    /// opts in and names a recipient is checked for repeats even with no slice.
    pub const fn new() -> Self {
        let mut slices = Self::none();
        slices.opted_in = true;
        slices
    }

    /// Adds the slice `dimension=value` (`country`, `GB`). The dimension [`CONTENT`] sets the
    /// content key to the value's hash instead. Pairs past [`MAX_SLICES`] are ignored; a
    /// dimension or value that breaks the rule ([`check_pair`]) is ignored by the tracker and
    /// counted in the kind's status.
    #[must_use]
    pub fn with(mut self, dimension: &'a str, value: &'a str) -> Self {
        self.opted_in = true;
        if dimension == CONTENT {
            self.content = Some(hash_of(value));
        } else if usize::from(self.len) < MAX_SLICES {
            self.pairs[usize::from(self.len)] = (dimension, value);
            self.len += 1;
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
        self
    }

    /// Names whom the notification is for (an address, a number, a user id): the repeat check
    /// counts per recipient. A guarded sender fills it from
    /// [`Notification::recipient`](crate::Notification::recipient) when it is not set here.
    #[must_use]
    pub fn recipient(mut self, recipient: &'a str) -> Self {
        self.opted_in = true;
        self.recipient = Some(recipient);
        self
    }

    /// Sets the content key: notifications to one recipient with the same key are the same
    /// notification to the repeat check (a hash of the template and its fields, a message id of
    /// the caller's).
    #[must_use]
    pub fn content(mut self, key: u64) -> Self {
        self.opted_in = true;
        self.content = Some(key);
        self
    }

    /// Sets the content key to a hash of `payload` (what the notification says), taken with a
    /// fixed seed.
    #[must_use]
    pub fn content_of(self, payload: &(impl Hash + ?Sized)) -> Self {
        self.content(hash_of(payload))
    }

    /// Whether this names nothing below the kind and opts out of the repeat check
    /// ([`Slices::none`]).
    pub fn is_none(&self) -> bool {
        !self.opted_in
    }

    /// The slices, as `(dimension, value)`, in the order named.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs().iter().copied()
    }

    pub(crate) fn pairs(&self) -> &[(&'a str, &'a str)] {
        &self.pairs[..usize::from(self.len)]
    }

    /// Pairs named past [`MAX_SLICES`].
    pub(crate) fn dropped(&self) -> u8 {
        self.dropped
    }

    /// Whom it is for, if named.
    pub fn recipient_named(&self) -> Option<&'a str> {
        self.recipient
    }

    /// The content key, if set.
    pub fn content_key(&self) -> Option<u64> {
        self.content
    }

    /// `self` with `recipient` as the recipient unless one is named already (how a guarded
    /// sender adds the notification's own recipient).
    pub(crate) fn or_recipient(mut self, recipient: Option<&'a str>) -> Self {
        if self.recipient.is_none() {
            self.recipient = recipient;
        }
        self
    }

    /// Reads `name=value` pairs separated by `;` (a send log's fourth column:
    /// `prefix=+447;tenant=acme`), each checked by [`check_pair`]; `content=…` sets the content
    /// key. Empty text opts in with no slice (the repeat check alone).
    ///
    /// ```
    /// use spikebreaker::guard::Slices;
    /// let slices = Slices::parse("prefix=+447;tenant=acme")?;
    /// assert_eq!(slices.iter().collect::<Vec<_>>(), [("prefix", "+447"), ("tenant", "acme")]);
    /// assert!(Slices::parse("prefix").is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(text: &'a str) -> Result<Self, String> {
        let mut slices = Self::new();
        for pair in text.split(';').filter(|pair| !pair.trim().is_empty()) {
            let Some((dimension, value)) = pair.split_once('=') else {
                return Err(format!("slice {} is not `name=value`", crate::name::shown(pair)));
            };
            let (dimension, value) = (dimension.trim(), value.trim());
            if dimension != CONTENT {
                check_pair(dimension, value)?;
            }
            if usize::from(slices.len) == MAX_SLICES && dimension != CONTENT {
                return Err(format!("more than {MAX_SLICES} slices"));
            }
            slices = slices.with(dimension, value);
        }
        Ok(slices)
    }
}

/// Checks a slice against the rule: a dimension of 1 to [`MAX_DIMENSION_BYTES`] bytes of ASCII
/// letters, digits, `_`, `-` and `.` (not [`CONTENT`], which names the content key), and a value
/// of 1 to [`MAX_VALUE_BYTES`] bytes with no control character.
pub fn check_pair(dimension: &str, value: &str) -> Result<(), String> {
    let dimension_ok = !dimension.is_empty()
        && dimension.len() <= MAX_DIMENSION_BYTES
        && dimension
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !dimension_ok {
        return Err(format!(
            "slice dimension {} must be 1 to {MAX_DIMENSION_BYTES} bytes of ASCII letters, digits, `_`, `-` and `.`",
            crate::name::shown(dimension)
        ));
    }
    if dimension == CONTENT {
        return Err(format!(
            "the dimension `{CONTENT}` names the content key, not a slice"
        ));
    }
    if value.is_empty() || value.len() > MAX_VALUE_BYTES || value.chars().any(char::is_control) {
        return Err(format!(
            "slice value {} of `{dimension}` must be 1 to {MAX_VALUE_BYTES} bytes with no control character",
            crate::name::shown(value)
        ));
    }
    Ok(())
}

/// One slice of a kind: a dimension and its value, shown as `prefix=+447`. A slice's refusal
/// ([`Blocked::slice`](crate::Blocked::slice)), its events ([`Event::slice`](crate::status::Event))
/// and its quarantined items name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SliceId {
    /// The dimension (`prefix`).
    pub dimension: Arc<str>,
    /// The value (`+447`).
    pub value: Arc<str>,
}

impl fmt::Display for SliceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.dimension, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_past_the_most_are_dropped_and_content_is_a_key() {
        let values: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let mut slices = Slices::new();
        for value in &values {
            slices = slices.with("d", value);
        }
        assert_eq!((slices.iter().len(), slices.dropped()), (MAX_SLICES, 2));
        let keyed = Slices::new().with("content", "hello");
        assert_eq!(keyed.iter().len(), 0);
        assert_eq!(keyed.content_key(), Some(hash_of("hello")));
        assert_eq!(
            Slices::parse("content=hello").unwrap().content_key(),
            keyed.content_key()
        );
    }

    #[test]
    fn the_rule_names_what_is_wrong() {
        for (dimension, value, problem) in [
            ("", "x", "dimension"),
            ("a b", "x", "dimension"),
            (&"d".repeat(33) as &str, "x", "dimension"),
            ("country", "", "value"),
            ("country", "G\u{1b}B", "value"),
            ("content", "x", "content key"),
        ] {
            let error = check_pair(dimension, value).unwrap_err();
            assert!(error.contains(problem), "{dimension:?}={value:?}: {error}");
        }
        assert!(check_pair("tenant.id", "acme corp").is_ok());
        assert!(Slices::parse("a=1;;b=2; ").is_ok());
        assert!(Slices::parse("a=1;b").unwrap_err().contains("`name=value`"));
        let nine = (0..9).map(|i| format!("d{i}=v")).collect::<Vec<_>>().join(";");
        assert!(Slices::parse(&nine).unwrap_err().contains("more than 8"));
    }

    #[test]
    fn none_opts_out_and_anything_named_opts_in() {
        assert!(Slices::none().is_none());
        assert!(Slices::default().is_none());
        assert!(!Slices::new().is_none());
        assert!(!Slices::none().recipient("a").is_none());
        assert!(!Slices::none().content(1).is_none());
        assert!(!Slices::parse("").unwrap().is_none());
        let shown = SliceId {
            dimension: "prefix".into(),
            value: "+447".into(),
        };
        assert_eq!(shown.to_string(), "prefix=+447");
    }
}
