//! The quarantine over the wire: a refused notification handed to the server to hold, released by
//! an operator, pulled back by its sender, acknowledged; and what a crash of either side does.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::Server;

/// Opens `kind` by an operator's hand (it must have been seen first).
fn force_open(server: &Server, kind: &str) {
    server.http("POST", "/v1/check", &format!(r#"{{"kind": "{kind}"}}"#));
    let reply = server.http("POST", &format!("/admin/kinds/{kind}/force-open"), "");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn hold(server: &Server, kind: &str, key: &str) -> (u16, Value) {
    let body = json!({"kind": kind, "key": key, "recipient": format!("{key}@example.com"),
        "notification": {"to": format!("{key}@example.com"), "text": "your code"}});
    let reply = server.http("POST", "/v1/hold", &body.to_string());
    (reply.status, reply.json())
}

/// Approves every held item of `kind`, at a pace no test waits for.
fn release(server: &Server, kind: &str) -> u64 {
    let reply = server.http(
        "POST",
        &format!("/admin/quarantine/{kind}/release"),
        r#"{"per_minute": 600000}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["approved"].as_u64().unwrap()
}

fn claim(server: &Server, max: u32) -> Vec<Value> {
    let reply = server.http("POST", "/v1/claim", &format!(r#"{{"max": {max}}}"#));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["items"].as_array().unwrap().clone()
}

fn ack(server: &Server, item: &Value, outcome: &str) -> Value {
    let body = json!({"token": item["token"], "outcome": outcome, "note": "provider answered 503"});
    let reply = server.http("POST", "/v1/ack", &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Every item of `kind` in the store, through the operator's route, page by page.
fn items(server: &Server, kind: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = server.http_with(
            "GET",
            &format!("/admin/quarantine/{kind}/items?after={after}&limit=1000"),
            &[],
            "",
        );
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json().as_array().unwrap().clone();
        let Some(last) = page.last() else {
            return all;
        };
        after = last["id"].as_u64().unwrap();
        all.extend(page);
    }
}

#[test]
fn a_refused_notification_is_held_released_pulled_back_with_its_key_and_acknowledged() {
    let server = Server::start("");
    // A kind that lets sends through holds nothing: the sender sends it.
    server.http("POST", "/v1/check", r#"{"kind": "sms.otp"}"#);
    let (status, body) = hold(&server, "sms.otp", "k0");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("send the notification"),
        "{body}"
    );

    force_open(&server, "sms.otp");
    let mut trips = BTreeSet::new();
    for key in ["k1", "k2", "k3"] {
        let (status, body) = hold(&server, "sms.otp", key);
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["reason"], "forced_open");
        trips.insert(body["trip"].as_u64().unwrap());
    }
    assert_eq!(trips.len(), 1, "one trip");
    assert!(claim(&server, 10).is_empty(), "nothing released yet");
    assert_eq!(release(&server, "sms.otp"), 3);

    let lent = claim(&server, 10);
    let keys: Vec<&str> = lent.iter().map(|item| item["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["k1", "k2", "k3"], "the senders' own keys, oldest first");
    assert_eq!(
        lent[0]["notification"],
        json!({"to": "k1@example.com", "text": "your code"})
    );
    assert_eq!(lent[0]["recipient"], "k1@example.com");
    assert_eq!(ack(&server, &lent[0], "sent")["acked"], "settled");
    assert_eq!(ack(&server, &lent[1], "sent")["acked"], "settled");
    assert_eq!(ack(&server, &lent[2], "failed")["acked"], "settled");

    let states: Vec<(String, String)> = items(&server, "sms.otp")
        .iter()
        .map(|item| {
            (
                item["state"].as_str().unwrap().to_owned(),
                item["note"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("released".into(), String::new()),
            ("released".into(), String::new()),
            ("held".into(), "provider answered 503".into())
        ]
    );
    let bad = server.http(
        "POST",
        "/v1/hold",
        r#"{"kind": "sms.otp", "key": "", "notification": {}}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn a_server_killed_mid_batch_of_holds_keeps_every_hold_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "", &[]);
    force_open(&server, "email.digest");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let address = server.http;
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let key = format!("s{sender}-{n}");
                    let body =
                        json!({"kind": "email.digest", "key": key, "notification": {"n": n}}).to_string();
                    let request = format!(
                        "POST /v1/hold HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    // Once the server is killed, connections fail or answer nothing: not acknowledged.
                    if crate::server::try_raw(address, request.as_bytes())
                        .is_some_and(|reply| reply.status == 201)
                    {
                        acknowledged.lock().unwrap().push(key);
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "holds too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }
    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();

    let again = Server::start_in(dir.path(), "", &[]);
    let kept: BTreeSet<String> = items(&again, "email.digest")
        .iter()
        .map(|item| {
            let stored: Value = item["notification"].clone();
            stored["key"].as_str().unwrap().to_owned()
        })
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&kept).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged holds lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}

#[test]
fn items_a_sender_claimed_and_never_acknowledged_come_back_after_the_lease_with_the_same_keys() {
    let server = Server::start("[server]\nlease_secs = 1\n");
    force_open(&server, "push.promo");
    for key in ["a", "b", "c"] {
        assert_eq!(hold(&server, "push.promo", key).0, 201);
    }
    release(&server, "push.promo");
    let first = claim(&server, 10);
    assert_eq!(first.len(), 3);
    // The sender dies here: no ack. The items are the lease's until it runs out.
    assert!(claim(&server, 10).is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        let again = claim(&server, 10);
        if !again.is_empty() {
            break again;
        }
        assert!(Instant::now() < deadline, "the items never came back");
        std::thread::sleep(Duration::from_millis(50));
    };
    let keys = |items: &[Value]| items.iter().map(|item| item["key"].clone()).collect::<Vec<_>>();
    assert_eq!(keys(&again), keys(&first));
    assert!(again.iter().all(|item| item["attempts"] == 2), "{again:?}");
    // The first claimer's late acknowledgement still records the send: the item was sent.
    assert_eq!(ack(&server, &first[0], "sent")["acked"], "settled");
    assert_eq!(ack(&server, &again[1], "sent")["acked"], "settled");
}
