//! Kind names: the one rule every name meets, checked wherever a name enters (handles, by-name
//! checks, [`Guarded`](crate::Guarded), the configuration, snapshots, fleet messages, send logs),
//! how a name is shown in an error, and maps keyed by kind name that refuse a name given twice.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};

use crate::error::Error;

/// The longest kind name, in bytes of UTF-8.
pub const MAX_KIND_NAME_BYTES: usize = 256;

/// The kind that every kind without a slot of its own shares (public as
/// [`Breaker::OVERFLOW_KIND`](crate::Breaker::OVERFLOW_KIND)).
pub(crate) const OVERFLOW_KIND: &str = "_overflow";

/// A name longer than this many characters is shown shortened in errors.
const SHOWN_CHARS: usize = 64;

/// Checks `name` against the kind-name rule: not empty, not only whitespace, no control character
/// (Unicode category `Cc`: `\0` to `\x1f` and `\x7f` to `\u{9f}`, newlines and terminal escapes
/// among them), at most [`MAX_KIND_NAME_BYTES`] bytes. Every other string is a valid name, dots,
/// spaces, commas and any script included.
///
/// A name that breaks the rule is never registered: [`Breaker::check`](crate::Breaker::check)
/// refuses its sends with [`Reason::InvalidKind`](crate::status::Reason::InvalidKind), a configuration or
/// snapshot naming it is refused, and a send log line carrying it is a bad line.
///
/// ```
/// use spikebreaker::config::validate_kind_name;
/// assert!(validate_kind_name("security.2fa_changed").is_ok());
/// let error = validate_kind_name("email\n").unwrap_err();
/// assert!(error.is_invalid_kind_name());
/// assert_eq!(error.to_string(), r#"invalid kind name "email\n": a kind name must not contain control characters"#);
/// ```
pub fn validate_kind_name(name: &str) -> Result<(), Error> {
    match problem(name) {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidKindName {
            name: shown(name),
            reason,
        }),
    }
}

/// What is wrong with `name`, if anything (see [`validate_kind_name`]).
pub(crate) fn problem(name: &str) -> Option<&'static str> {
    if plain(name.as_bytes()) {
        return None;
    }
    if name.is_empty() {
        Some("a kind name must not be empty")
    } else if name.len() > MAX_KIND_NAME_BYTES {
        Some("a kind name must be at most 256 bytes")
    } else if name.chars().any(char::is_control) {
        Some("a kind name must not contain control characters")
    } else if name.chars().all(char::is_whitespace) {
        Some("a kind name must not be only whitespace")
    } else {
        None
    }
}

/// Whether `name` is a valid name of printable ASCII without spaces, as most are: one pass over
/// the bytes decides it (a name that is not may still be valid).
#[inline]
pub(crate) fn plain(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_KIND_NAME_BYTES && name.iter().all(u8::is_ascii_graphic)
}

/// `text` fit to show in an error message or on a terminal: quoted, control characters escaped
/// (`\n`, `\u{1b}`), and cut after 64 characters.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

/// Deserializes a map keyed by kind name, refusing a name given twice (JSON would otherwise keep
/// the last silently; TOML refuses duplicates itself).
pub(crate) fn unique_kinds<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: serde::Deserialize<'de>,
{
    struct UniqueKinds<V>(PhantomData<V>);

    impl<'de, V: serde::Deserialize<'de>> Visitor<'de> for UniqueKinds<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from kind name to its settings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kinds = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if kinds.contains_key(&name) {
                    return Err(serde::de::Error::custom(format_args!(
                        "kind {} is given twice",
                        shown(&name)
                    )));
                }
                let value = map.next_value()?;
                kinds.insert(name, value);
            }
            Ok(kinds)
        }
    }

    deserializer.deserialize_map(UniqueKinds(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_refuses_empty_blank_control_and_long_names() {
        let long = "k".repeat(MAX_KIND_NAME_BYTES + 1);
        let cases: [(&str, Option<&str>); 12] = [
            ("email.welcome", None),
            ("a", None),
            ("tenant 42: receipt, weekly", None),
            ("通知.ようこそ", None),
            (" padded ", None),
            ("", Some("empty")),
            (" ", Some("whitespace")),
            ("\u{3000}\u{a0}", Some("whitespace")),
            ("\n", Some("control")),
            ("email.\u{1b}[2Jwelcome", Some("control")),
            ("nul\0", Some("control")),
            (&long, Some("256 bytes")),
        ];
        for (name, expected) in cases {
            match (problem(name), expected) {
                (None, None) => {}
                (Some(problem), Some(expected)) => assert!(problem.contains(expected), "{name:?}: {problem}"),
                (got, _) => panic!("{name:?}: got {got:?}, expected {expected:?}"),
            }
        }
        assert!(problem(&"k".repeat(MAX_KIND_NAME_BYTES)).is_none());
        // Bytes, not characters: 86 three-byte characters are 258 bytes.
        assert!(problem(&"あ".repeat(86)).is_some());
    }

    #[test]
    fn names_are_shown_escaped_and_shortened() {
        assert_eq!(shown("a\nb\u{1b}"), r#""a\nb\u{1b}""#);
        let long = "x".repeat(10_000);
        let text = shown(&long);
        assert!(text.len() < 100 && text.ends_with("... (10000 bytes)"), "{text}");
    }
}
