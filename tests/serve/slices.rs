//! Slices below the kind over the wire: a descriptor's entries beside `kind`, and `/v1/check`'s
//! `slices`, are tracked and judged as an in-process sender's; a refusal names the slice.

use serde_json::json;

use crate::server::Server;
use crate::support::{HOUR_MS, MINUTE_MS, MONDAY_MS};

const KIND: &str = "sms.login_code";
/// The kind itself is given room enough never to trip here: these are its slices' stories.
const CONFIG: &str = r#"
[kinds."sms.login_code"]
warmup_ceiling = 100000
minute = { floor = 100000 }
hour = { floor = 100000 }
day = { floor = 100000 }
"#;

fn check(server: &Server, prefix: &str, count: u64) -> serde_json::Value {
    let body = json!({"kind": KIND, "count": count, "slices": {"prefix": prefix}});
    let reply = server.http("POST", "/v1/check", &body.to_string());
    assert!(matches!(reply.status, 200 | 429), "{}", reply.body);
    reply.json()
}

fn descriptor(prefix: &str) -> String {
    json!({
        "domain": "spikebreaker",
        "descriptors": [{"entries": [{"key": "kind", "value": KIND}, {"key": "prefix", "value": prefix}]}],
    })
    .to_string()
}

#[test]
fn a_pumped_prefix_is_refused_over_the_wire_naming_the_slice_while_the_rest_flow() {
    let server = Server::start_manual(CONFIG, MONDAY_MS);
    // Three hours of three prefixes every five minutes (20, 10 and 1 a time): the shares learned.
    for minute in (0..180).step_by(5) {
        server.set_clock(MONDAY_MS + minute * MINUTE_MS);
        for (prefix, count) in [("+44", 20), ("+33", 10), ("+49", 1)] {
            assert_eq!(
                check(&server, prefix, count)["decision"],
                "allowed",
                "{prefix} at {minute}"
            );
        }
    }
    server.set_clock(MONDAY_MS + 3 * HOUR_MS + MINUTE_MS);
    assert_eq!(check(&server, "+44", 20)["decision"], "allowed");
    // +49 (about 3% of the kind) pumped: 50 at once.
    let pumped = check(&server, "+49", 50);
    assert_eq!(pumped["decision"], "blocked", "{pumped}");
    assert_eq!(
        (pumped["reason"].clone(), pumped["slice"].clone()),
        (json!("slice"), json!("prefix=+49"))
    );
    let allowed = pumped["allowed"].as_u64().unwrap();
    assert!((1..50).contains(&allowed), "{pumped}");
    let explanation = pumped["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("prefix=+49 of sms.login_code is open (slice): minute window")
            && explanation.contains("(expected share 3."),
        "{explanation}"
    );
    assert_eq!(pumped["retry_after_secs"], 300);
    // The rest of the kind flows, by either route; the pumped prefix is refused by both.
    assert_eq!(check(&server, "+33", 10)["decision"], "allowed");
    let other = server.http("POST", "/json", &descriptor("+44"));
    assert_eq!(other.status, 200, "{}", other.body);
    let refused = server.http("POST", "/json", &descriptor("+49"));
    assert_eq!(refused.status, 429, "{}", refused.body);
    let headers = refused.json()["responseHeadersToAdd"].to_string();
    assert!(
        headers.contains("prefix=+49 of sms.login_code is open (slice)"),
        "{headers}"
    );
    // The operator sees the open slice, and may close it.
    let status = server.http("GET", &format!("/admin/status/{KIND}"), "").json();
    let prefix = &status["slices"][0];
    assert_eq!(prefix["dimension"], "prefix");
    let open: Vec<_> = prefix["slices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|slice| slice["state"] == "open")
        .map(|slice| slice["value"].clone())
        .collect();
    assert_eq!(open, [json!("+49")]);
    let reset = server.http(
        "POST",
        &format!("/admin/kinds/{KIND}/slices/prefix/+49/reset"),
        "",
    );
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(check(&server, "+49", 1)["decision"], "allowed");
}

#[test]
fn the_same_notice_to_one_recipient_is_refused_past_the_repeat_limit_over_the_wire() {
    let server = Server::start("");
    let body =
        json!({"kind": "email.notice", "slices": {"recipient": "ana@example.com", "content": "overdue"}});
    for _ in 0..10 {
        let reply = server.http("POST", "/v1/check", &body.to_string());
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let refused = server.http("POST", "/v1/check", &body.to_string()).json();
    assert_eq!(refused["decision"], "blocked");
    assert_eq!(
        (refused["reason"].clone(), refused["slice"].clone()),
        (json!("repeat"), json!("recipient=ana@example.com"))
    );
    // Another notice to her, and the same to someone else, go.
    let other =
        json!({"kind": "email.notice", "slices": {"recipient": "ana@example.com", "content": "receipt"}});
    assert_eq!(server.http("POST", "/v1/check", &other.to_string()).status, 200);
    let descriptor = json!({
        "domain": "spikebreaker",
        "descriptors": [{"entries": [
            {"key": "kind", "value": "email.notice"},
            {"key": "recipient", "value": "bo@example.com"},
            {"key": "content", "value": "overdue"},
        ]}],
    });
    assert_eq!(server.http("POST", "/json", &descriptor.to_string()).status, 200);
    // A slice that breaks the rule is a bad request, counting nothing.
    let bad = json!({"kind": "email.notice", "slices": {"ten ant": "x"}});
    let reply = server.http("POST", "/v1/check", &bad.to_string());
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("slice dimension")
    );
}

#[test]
fn a_notification_a_slice_refused_is_held_over_the_wire_under_the_slice() {
    let server = Server::start_manual(CONFIG, MONDAY_MS);
    for minute in (0..180).step_by(5) {
        server.set_clock(MONDAY_MS + minute * MINUTE_MS);
        for (prefix, count) in [("+44", 20), ("+33", 10), ("+49", 1)] {
            check(&server, prefix, count);
        }
    }
    server.set_clock(MONDAY_MS + 3 * HOUR_MS + MINUTE_MS);
    assert_eq!(check(&server, "+49", 50)["slice"], "prefix=+49");
    let hold = |slice: &str| {
        let body = json!({"kind": KIND, "key": "k1", "notification": {"to": "+4915"}, "slice": slice});
        server.http("POST", "/v1/hold", &body.to_string())
    };
    let held = hold("prefix=+49");
    assert_eq!(held.status, 201, "{}", held.body);
    assert_eq!(held.json()["reason"], "slice");
    let items = server
        .http("GET", &format!("/admin/quarantine/{KIND}/items"), "")
        .json();
    assert_eq!(items[0]["slice"], "prefix=+49", "{items}");
    // A slice that lets sends through holds nothing; a slice that breaks the rule is named.
    let open = hold("prefix=+44");
    assert_eq!(open.status, 409, "{}", open.body);
    assert!(
        open.body.contains("prefix=+44 of sms.login_code"),
        "{}",
        open.body
    );
    assert_eq!(hold("prefix").status, 400);
}
