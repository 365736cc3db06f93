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
/// among them), no invisible or bidirectional formatting character, at most
/// [`MAX_KIND_NAME_BYTES`] bytes. Every other string is a valid name, dots, spaces, commas and any
/// script included.
///
/// The invisible characters refused are those that make one name look like another, or reorder
/// what is shown around it (the "Trojan Source" attacks, CVE-2021-42574): every format character
/// (Unicode category `Cf`: the bidirectional embeddings, overrides and isolates such as `U+202E`,
/// the marks `U+200E`, `U+200F` and `U+061C`, the zero-width space, joiners and word joiner, the
/// byte order mark, the soft hyphen, invisible operators, tags), the line and paragraph
/// separators (`U+2028`, `U+2029`), the variation selectors, and the characters that show as
/// nothing although they are letters (the Hangul fillers, the Khmer inherent vowels, the
/// combining grapheme joiner, the blank Braille pattern). A name such as `"\u{202e}evil"` would
/// show as `live` in a status page, an alert or a quarantine list; a name with a zero-width space
/// would show as a kind it is not. Emoji joined into one picture (with `U+200D`) or given a
/// presentation (`U+FE0F`) are refused with them. Look-alike letters of other scripts are
/// visible characters and not refused.
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
/// let spoof = validate_kind_name("\u{202e}lamina.email").unwrap_err(); // shows as "liame.animal"
/// assert_eq!(spoof.to_string(), r#"invalid kind name "\u{202e}lamina.email": a kind name must not contain invisible or bidirectional formatting characters"#);
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
    } else if name.chars().any(invisible) {
        Some("a kind name must not contain invisible or bidirectional formatting characters")
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

/// The invisible and formatting characters the kind-name rule refuses (see
/// [`validate_kind_name`]), by range: every character of Unicode's category `Cf` (format), and
/// the other characters that show as nothing.
const INVISIBLE: [(char, char); 26] = [
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark (bidirectional)
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{115F}', '\u{1160}'),   // Hangul choseong and jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian variation selectors and vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space, non-joiner, joiner; left-to-right, right-to-left marks
    ('\u{2028}', '\u{202E}'),   // line and paragraph separators; bidirectional embeddings and overrides
    ('\u{2060}', '\u{206F}'), // word joiner, invisible operators, bidirectional isolates, deprecated formats
    ('\u{2800}', '\u{2800}'), // Braille pattern blank
    ('\u{3164}', '\u{3164}'), // Hangul filler
    ('\u{FE00}', '\u{FE0F}'), // variation selectors
    ('\u{FEFF}', '\u{FEFF}'), // zero-width no-break space (byte order mark)
    ('\u{FFA0}', '\u{FFA0}'), // halfwidth Hangul filler
    ('\u{FFF0}', '\u{FFFB}'), // interlinear annotation (and the unassigned specials before it)
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0000}', '\u{E0FFF}'), // tags, variation selectors supplement
];

/// Whether the kind-name rule refuses `c` as invisible or formatting (see [`INVISIBLE`]).
fn invisible(c: char) -> bool {
    // Every range starts at U+00AD or later: ASCII and Latin-1's letters cost one compare.
    c >= '\u{00AD}' && INVISIBLE.iter().any(|&(from, to)| (from..=to).contains(&c))
}

/// `text` fit to show in an error message or on a terminal: quoted, control characters and the
/// invisible and formatting characters the kind-name rule refuses escaped (`\n`, `\u{1b}`,
/// `\u{202e}`), and cut after 64 characters.
pub(crate) fn shown(text: &str) -> String {
    let (kept, cut) = match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => (&text[..cut], true),
        None => (text, false),
    };
    let mut shown = String::with_capacity(kept.len() + 2);
    shown.push('"');
    let mut rest = kept;
    while !rest.is_empty() {
        // A run of other characters, escaped as Rust escapes a string (`Debug`) less its quotes,
        // then the invisible character that ends it, if any.
        let end = rest.find(invisible).unwrap_or(rest.len());
        let escaped = format!("{:?}", &rest[..end]);
        shown.push_str(&escaped[1..escaped.len() - 1]);
        if let Some(c) = rest[end..].chars().next() {
            shown.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            rest = &rest[end + c.len_utf8()..];
        } else {
            rest = "";
        }
    }
    shown.push('"');
    if cut {
        shown.push_str(&format!("... ({} bytes)", text.len()));
    }
    shown
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
        let cases: [(&str, Option<&str>); 22] = [
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
            // Trojan Source: bidirectional overrides, embeddings, isolates and marks.
            ("\u{202e}evil", Some("bidirectional")),
            ("admin\u{2066}.x\u{2069}", Some("bidirectional")),
            ("a\u{200f}b", Some("bidirectional")),
            ("\u{61c}a", Some("bidirectional")),
            // Zero-width and other invisible characters.
            ("email.wel\u{200b}come", Some("invisible")),
            ("email.welcome\u{feff}", Some("invisible")),
            ("e\u{ad}mail", Some("invisible")),
            ("\u{3164}", Some("invisible")),
            ("tag\u{e0041}", Some("invisible")),
            ("a\u{2028}b", Some("invisible")),
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
    fn every_format_character_is_refused_and_no_visible_one_is() {
        // The format characters (Unicode category Cf), as Unicode 15.1 lists them.
        let format = [
            0xAD, 0x600, 0x601, 0x602, 0x603, 0x604, 0x605, 0x61C, 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0x180E,
            0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2061,
            0x2062, 0x2063, 0x2064, 0x2066, 0x2067, 0x2068, 0x2069, 0x206A, 0x206B, 0x206C, 0x206D, 0x206E,
            0x206F, 0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0x110BD, 0x110CD, 0x13430, 0x1343F, 0x1BCA0, 0x1BCA3,
            0x1D173, 0x1D17A, 0xE0001, 0xE0020, 0xE007F,
        ];
        for code in format {
            let c = char::from_u32(code).unwrap();
            assert!(invisible(c), "U+{code:04X}");
        }
        // Visible characters of many scripts, spaces and symbols pass.
        for c in "aZ0._-:/ é ü ß ø Ω Ж ж 中 あ ア 한 ع ש ह ก 😀 ✓ \u{a0}\u{202f}\u{3000}".chars()
        {
            assert!(!invisible(c), "{c:?}");
        }
        assert!(!invisible('\u{0301}'), "a combining accent shows on its letter");
    }

    #[test]
    fn names_are_shown_escaped_and_shortened() {
        assert_eq!(shown("a\nb\u{1b}"), r#""a\nb\u{1b}""#);
        assert_eq!(shown("\u{202e}evil"), r#""\u{202e}evil""#);
        assert_eq!(shown("a\u{3164}\u{200b}b\"'"), r#""a\u{3164}\u{200b}b\"'""#);
        let long = "x".repeat(10_000);
        let text = shown(&long);
        assert!(text.len() < 100 && text.ends_with("... (10000 bytes)"), "{text}");
    }
}
