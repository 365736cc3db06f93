//! The kind-name rule where names enter: a send by name, a handle, a guarded sender, the
//! configuration, a planned surge, an operator control and a snapshot. A name that breaks it
//! (empty, only whitespace, a control character, an invisible or bidirectional formatting
//! character, over 256 bytes) is refused with a reason naming it, escaped, is never registered,
//! and so never reaches a snapshot.

use std::time::Duration;

use spikebreaker::config::{MAX_KIND_NAME_BYTES, validate_kind_name};
use spikebreaker::status::Reason;
use spikebreaker::{
    Breaker, Config, Decision, GuardError, Guarded, ManualClock, Notification, Sender, Snapshot,
};

fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "\n".into(),
        "\t\r\n ".into(),
        "email.\u{1b}[31mwelcome".into(),
        "nul\0byte".into(),
        // Shown as "live" and as "email.welcome": Trojan Source spoofs of other kinds.
        "\u{202e}evil".into(),
        "email.wel\u{200b}come".into(),
        "k".repeat(MAX_KIND_NAME_BYTES + 1),
        "x".repeat(10 << 20),
    ]
}

#[test]
fn a_send_by_name_or_handle_with_a_bad_name_is_refused_and_registers_nothing() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    for name in bad_names() {
        assert_eq!(breaker.check(&name), Decision::Blocked(Reason::InvalidKind));
        let handle = breaker.kind(&name);
        assert_eq!(handle.check(), Decision::Blocked(Reason::InvalidKind));
        assert_eq!(handle.name(), name);
        assert_eq!(handle.status().reason, Reason::InvalidKind);
        assert!(breaker.kind_status(&name).is_none());
        assert!(validate_kind_name(&name).unwrap_err().is_invalid_kind_name());
    }
    let status = breaker.status();
    assert_eq!(
        (status.registered, status.overflowed, status.kinds.len()),
        (0, 0, 0)
    );
    // Names the rule allows, however unusual, are kinds like any other.
    for name in [
        "tenant 42: receipt, weekly",
        "通知.ようこそ",
        " padded ",
        &"k".repeat(MAX_KIND_NAME_BYTES),
    ] {
        assert!(breaker.check(name).is_allowed(), "{name:?}");
        assert_eq!(breaker.kind_status(name).unwrap().attempted, 1);
    }
}

/// Names that show as another name (or reorder what is shown around them), from the classes the
/// rule refuses: a bidirectional override, isolate and mark, a zero-width space and joiner, a
/// byte order mark, a soft hyphen, a Hangul filler, a tag character.
const SPOOFS: [&str; 9] = [
    "\u{202e}evil",
    "security.\u{2066}2fa_changed\u{2069}",
    "email.welcome\u{200f}",
    "email.wel\u{200b}come",
    "email\u{200d}.welcome",
    "\u{feff}email.welcome",
    "email.wel\u{ad}come",
    "email.welcome\u{3164}",
    "email.welcome\u{e0041}",
];

#[test]
fn a_name_with_an_invisible_or_bidirectional_character_is_refused_everywhere_it_enters() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let guarded = Guarded::new(Outbox, breaker.clone());
    for name in SPOOFS {
        // Sends by name, by handle and through a guarded sender.
        assert_eq!(
            breaker.check(name),
            Decision::Blocked(Reason::InvalidKind),
            "{name:?}"
        );
        assert_eq!(breaker.kind(name).check(), Decision::Blocked(Reason::InvalidKind));
        let Err(GuardError::Blocked(blocked)) = guarded.send(Email(name.into())) else {
            panic!("{name:?} was sent");
        };
        assert_eq!(blocked.reason(), Reason::InvalidKind);
        // Operator controls and a planned surge.
        let error = breaker.force_open(name).unwrap_err();
        assert!(error.is_invalid_kind_name(), "{name:?}: {error}");
        let error = breaker.plan_surge(name, 10, Duration::from_secs(60)).unwrap_err();
        assert!(error.is_invalid_kind_name(), "{name:?}: {error}");
        // The configuration: an override key and a surge's kind, refused with the name escaped.
        let toml_name: String = name.chars().map(|c| format!("\\U{:08X}", u32::from(c))).collect();
        let key = format!("[kinds.\"{toml_name}\"]\ndry_run = true\n");
        let error = Config::from_toml(&key).unwrap_err().to_string();
        assert!(error.contains("invisible or bidirectional"), "{name:?}: {error}");
        assert!(error.is_ascii(), "shown escaped: {error}");
        let surge = format!(
            "[[surges]]\nkind = \"{toml_name}\"\nsends = 10\nfrom = \"2026-01-01T00:00:00Z\"\nuntil = \"2026-01-01T01:00:00Z\"\n"
        );
        let error = Config::from_toml(&surge).unwrap_err().to_string();
        assert!(error.contains("surges[0].kind") && error.is_ascii(), "{error}");
        // A snapshot naming it.
        let snapshot = format!(
            r#"{{"version":1,"kinds":{{{}:{{"window_secs":60,"mean":1.0,"variance":1.0,"peak":2.0,"windows":9}}}}}}"#,
            serde_json::to_string(name).unwrap()
        );
        let error = Snapshot::from_json(&snapshot).unwrap_err().to_string();
        assert!(
            error.contains("invisible or bidirectional") && error.is_ascii(),
            "{error}"
        );
    }
    let status = breaker.status();
    assert_eq!(
        (status.registered, status.kinds.len()),
        (0, 0),
        "{:?}",
        status.kinds
    );
    // The escaped name, as an operator reads it.
    assert_eq!(
        breaker.force_open("\u{202e}evil").unwrap_err().to_string(),
        r#"invalid kind name "\u{202e}evil": a kind name must not contain invisible or bidirectional formatting characters"#
    );
}

#[derive(Debug)]
struct Email(String);

impl Notification for Email {
    fn kind(&self) -> &str {
        &self.0
    }
}

struct Outbox;

impl Sender<Email> for Outbox {
    type Output = ();
    type Error = ();
    fn send(&self, _: Email) -> Result<(), ()> {
        Ok(())
    }
}

#[test]
fn a_guarded_notification_with_a_bad_kind_comes_back_with_the_reason() {
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    let guarded = Guarded::new(Outbox, breaker.clone());
    let Err(GuardError::Blocked(blocked)) = guarded.send(Email("\n".into())) else {
        panic!("a kind of a newline was sent");
    };
    assert_eq!((blocked.kind(), blocked.reason()), ("\n", Reason::InvalidKind));
    assert_eq!(blocked.into_notification().0, "\n");
    assert!(guarded.send(Email("email.welcome".into())).is_ok());
    assert_eq!(breaker.status().registered, 1);
}

#[test]
fn sends_with_bad_names_leave_every_snapshot_restorable() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let receipts = breaker.kind("email.receipt");
    for _minute in 0..90 {
        for _ in 0..20 {
            clock.advance(Duration::from_secs(3));
            assert!(receipts.check().is_allowed());
        }
        for name in ["", " ", "\n"] {
            let _ = breaker.check(name);
        }
    }
    let saved = breaker.snapshot().to_json();
    let restarted = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    restarted.restore(&Snapshot::from_json(&saved).unwrap()).unwrap();
    let restored = restarted.kind_status("email.receipt").unwrap();
    assert!(
        restored.warmed_up && restored.minute().expected > 0.0,
        "{restored:?}"
    );
    let saved: serde_json::Value = serde_json::from_str(&restarted.snapshot().to_json()).unwrap();
    assert_eq!(saved["kinds"].as_object().unwrap().len(), 1);
}

#[test]
fn a_configuration_or_snapshot_naming_a_bad_kind_is_refused_naming_it() {
    let cases = [
        (
            "[kinds.\"\"]\ndry_run = true\n",
            r#"invalid `kinds` = "": a kind name must not be empty"#,
        ),
        ("[kinds.\" \"]\ndry_run = true\n", "must not be only whitespace"),
        (
            "[kinds.\"a\\nb\"]\ndry_run = true\n",
            r#"invalid `kinds` = "a\nb": a kind name must not contain control characters"#,
        ),
        ("[kinds.\"a\\u001b[2J\"]\ndry_run = true\n", r#""a\u{1b}[2J""#),
    ];
    for (toml, expected) in cases {
        let error = Config::from_toml(toml).unwrap_err().to_string();
        assert!(error.contains(expected), "{toml:?}: {error}");
    }
    let long = "k".repeat(MAX_KIND_NAME_BYTES + 1);
    let error = Config::from_json(&format!(r#"{{"kinds": {{"{long}": {{}}}}}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("at most 256 bytes") && error.contains("(257 bytes)"),
        "{error}"
    );

    let snapshot =
        r#"{"version":1,"kinds":{"\n":{"window_secs":60,"mean":1.0,"variance":1.0,"peak":2.0,"windows":9}}}"#;
    let error = Snapshot::from_json(snapshot).unwrap_err();
    assert!(error.is_snapshot(), "{error}");
    assert_eq!(
        error.to_string(),
        r#"cannot restore snapshot: kind "\n": a kind name must not contain control characters"#
    );
}
