//! Wrapping senders: a blocked notification comes back to the caller whole, with its kind and
//! reason; the sender's own errors pass through untouched; sync, async and tower alike.

use std::cell::RefCell;
use std::sync::Mutex;

use spikebreaker::{
    AsyncSender, Breaker, Config, GuardError, Guarded, ManualClock, Notification, Reason, Sender,
};

#[derive(Debug, Clone, PartialEq)]
struct Email {
    kind: &'static str,
    to: String,
}

impl Notification for Email {
    fn kind(&self) -> &str {
        self.kind
    }
}

/// Records what it sends; fails for one address.
#[derive(Default)]
struct Outbox {
    sent: Mutex<Vec<Email>>,
}

#[derive(Debug, PartialEq)]
struct Bounced(String);

impl Sender<Email> for Outbox {
    type Output = usize;
    type Error = Bounced;

    fn send(&self, email: Email) -> Result<usize, Bounced> {
        if email.to == "bounce@example.com" {
            return Err(Bounced(email.to));
        }
        let mut sent = self.sent.lock().unwrap();
        sent.push(email);
        Ok(sent.len())
    }
}

impl AsyncSender<Email> for Outbox {
    type Output = usize;
    type Error = Bounced;

    async fn send(&self, email: Email) -> Result<usize, Bounced> {
        Sender::send(self, email)
    }
}

fn tripped_breaker() -> Breaker<ManualClock> {
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    breaker.force_open("security.2fa_changed");
    breaker
}

fn email(kind: &'static str, to: &str) -> Email {
    Email { kind, to: to.into() }
}

#[test]
fn a_blocked_notification_comes_back_whole_with_its_kind_and_reason() {
    let guarded = Guarded::new(Outbox::default(), tripped_breaker());
    let original = email("security.2fa_changed", "a@example.com");
    let Err(GuardError::Blocked(blocked)) = Sender::send(&guarded, original.clone()) else {
        panic!("expected a block");
    };
    assert_eq!(
        (blocked.kind(), blocked.reason()),
        ("security.2fa_changed", Reason::ForcedOpen)
    );
    assert_eq!(
        blocked.to_string(),
        "notification of kind `security.2fa_changed` blocked by spikebreaker (forced_open)"
    );
    assert_eq!(blocked.into_notification(), original);
    assert!(
        guarded.get_ref().sent.lock().unwrap().is_empty(),
        "nothing reached the sender"
    );
}

#[test]
fn other_kinds_and_sender_errors_pass_through_untouched() {
    let guarded = Guarded::new(Outbox::default(), tripped_breaker());
    assert_eq!(
        Sender::send(&guarded, email("email.welcome", "a@example.com")),
        Ok(1)
    );
    let error = Sender::send(&guarded, email("email.welcome", "bounce@example.com")).unwrap_err();
    assert!(!error.is_blocked());
    assert!(matches!(error, GuardError::Sender(Bounced(ref to)) if to == "bounce@example.com"));
    assert_eq!(
        guarded.breaker().kind_status("email.welcome").unwrap().attempted,
        2
    );
}

#[test]
fn a_classifier_names_the_kind_of_a_type_that_does_not() {
    struct Push {
        topic: String,
    }
    struct Apns(RefCell<u32>);
    impl Sender<Push> for Apns {
        type Output = ();
        type Error = ();
        fn send(&self, _: Push) -> Result<(), ()> {
            *self.0.borrow_mut() += 1;
            Ok(())
        }
    }
    let breaker = tripped_breaker();
    breaker.force_open("push.promo");
    let guarded = Guarded::with_classifier(Apns(RefCell::new(0)), breaker, |p: &Push| p.topic.as_str());
    let blocked = guarded
        .send(Push {
            topic: "push.promo".into(),
        })
        .unwrap_err()
        .into_blocked()
        .unwrap();
    assert_eq!(blocked.into_notification().topic, "push.promo");
    assert!(
        guarded
            .send(Push {
                topic: "push.news".into()
            })
            .is_ok()
    );
    assert_eq!(*guarded.get_ref().0.borrow(), 1);
}

#[tokio::test]
async fn async_senders_are_guarded_the_same_way() {
    let guarded = Guarded::new(Outbox::default(), tripped_breaker());
    let blocked = AsyncSender::send(&guarded, email("security.2fa_changed", "a@example.com")).await;
    assert_eq!(
        blocked
            .unwrap_err()
            .into_blocked()
            .unwrap()
            .into_notification()
            .to,
        "a@example.com"
    );
    assert_eq!(
        AsyncSender::send(&guarded, email("email.welcome", "b@example.com")).await,
        Ok(1)
    );
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn a_tower_service_behind_the_layer_hands_blocked_requests_back() {
    use spikebreaker::tower::GuardLayer;
    use tower::{Layer, ServiceExt, service_fn};

    let layer = GuardLayer::new(tripped_breaker());
    let service = layer.layer(service_fn(
        |email: Email| async move { Ok::<_, Bounced>(email.to) },
    ));
    let sent = service
        .clone()
        .oneshot(email("email.welcome", "a@example.com"))
        .await;
    assert_eq!(sent.ok().as_deref(), Some("a@example.com"));
    let refused = service
        .oneshot(email("security.2fa_changed", "b@example.com"))
        .await;
    let blocked = refused.unwrap_err().into_blocked().unwrap();
    assert_eq!(
        (blocked.kind(), blocked.notification().to.as_str()),
        ("security.2fa_changed", "b@example.com")
    );
}

#[test]
fn a_notification_refused_on_the_overflow_kind_comes_back_naming_it() {
    let config = Config {
        max_kinds: 1,
        ..Config::default()
    };
    let breaker = Breaker::with_clock(config, ManualClock::new()).unwrap();
    let _ = breaker.check("email.welcome");
    breaker.force_open(Breaker::OVERFLOW_KIND);
    let guarded = Guarded::new(Outbox::default(), breaker);
    let Err(GuardError::Blocked(blocked)) = Sender::send(&guarded, email("user-4711", "a@example.com"))
    else {
        panic!("expected a block");
    };
    assert_eq!(
        (blocked.kind(), blocked.reason()),
        (Breaker::OVERFLOW_KIND, Reason::ForcedOpen)
    );
    assert!(Sender::send(&guarded, email("email.welcome", "b@example.com")).is_ok());
    // Each refused send was looked up once: the overflow count matches the overflow kind's.
    for user in 0..99 {
        let to = format!("user-{user}");
        assert!(
            Sender::send(&guarded, email("user-id-in-kind", &to))
                .unwrap_err()
                .is_blocked()
        );
    }
    let overflow = guarded.breaker().kind_status(Breaker::OVERFLOW_KIND).unwrap();
    assert_eq!(
        (guarded.breaker().status().overflowed, overflow.attempted),
        (100, 100)
    );
}
