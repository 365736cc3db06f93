//! The dimension's table on hand-made traffic: learning shares, judging, tracking.

use super::*;

const MONDAY: u64 = 4 * 24 * HOUR_MS;

fn table() -> Table {
    Table::new(Arc::from("tenant"), Arc::new(SliceSettings::for_tests()), MONDAY)
}

/// Sends `per_minute` of each `(value, per_minute)` for `minutes` from `from`, evenly.
fn feed(table: &mut Table, from: u64, minutes: u64, values: &[(&str, u64)]) -> (u64, Vec<Event>) {
    let kind: Arc<str> = Arc::from("k");
    let mut events = Vec::new();
    let mut refused = 0;
    let mut sends: Vec<(u64, &str)> = (0..minutes)
        .flat_map(|minute| {
            values.iter().flat_map(move |&(value, per_minute)| {
                (0..per_minute).map(move |i| (from + minute * 60_000 + i * 60_000 / per_minute, value))
            })
        })
        .collect();
    sends.sort_unstable();
    for (now, value) in sends {
        let cx = Context {
            kind: &kind,
            now,
            dry_run: false,
        };
        refused += u64::from(table.check(cx, value, &mut events) != Verdict::Allowed);
    }
    (refused, events)
}

#[test]
fn values_learn_their_shares_and_a_pumped_one_trips_alone() {
    let mut t = table();
    let normal = [("a", 60), ("b", 30), ("c", 3)];
    let (refused, events) = feed(&mut t, MONDAY, 4 * 60, &normal);
    assert_eq!((refused, events.len()), (0, 0), "{events:#?}");
    let status = t.status(MONDAY + 4 * HOUR_MS);
    assert!(status.warmed_up);
    let share = |value: &str| {
        status
            .slices
            .iter()
            .find(|s| &*s.value == value)
            .and_then(|s| s.learned_share)
    };
    assert!((share("a").unwrap() - 60.0 / 93.0).abs() < 0.02, "{status:?}");
    assert!((share("c").unwrap() - 3.0 / 93.0).abs() < 0.01, "{status:?}");
    let later = MONDAY + 4 * HOUR_MS;
    let (refused, events) = feed(&mut t, later, 5, &[("a", 60), ("b", 30), ("c", 60)]);
    assert!(refused > 100 && refused < 300, "{refused}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].slice.as_ref().unwrap().to_string(), "tenant=c");
    // The others flowed: every refusal was c's.
    let status = t.status(later + 5 * 60_000);
    let blocked = |value: &str| status.slices.iter().find(|s| &*s.value == value).unwrap().blocked;
    assert_eq!((blocked("a"), blocked("b"), blocked("c")), (0, 0, refused));
}

fn table_tracking(track: usize) -> Table {
    let settings = SliceSettings {
        track,
        ..SliceSettings::for_tests()
    };
    Table::new(Arc::from("tenant"), Arc::new(settings), MONDAY)
}

fn value(table: &Table, value: &str) -> Option<usize> {
    table.slots.iter().position(|slot| &*slot.value == value)
}

#[test]
fn at_most_track_values_are_tracked_and_a_busy_one_takes_the_least_busys_place() {
    let mut t = table_tracking(4);
    let many: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let quiet: Vec<(&str, u64)> = many.iter().map(|name| (name.as_str(), 1)).collect();
    feed(&mut t, MONDAY, 10, &quiet);
    assert_eq!(t.slots.len(), 4, "never more than `track`");
    assert!(value(&t, "busy").is_none());
    let (refused, _) = feed(&mut t, MONDAY + 10 * 60_000, 1, &[("busy", 30)]);
    assert_eq!(refused, 0);
    assert!(value(&t, "busy").is_some(), "the busy value took a place");
    assert_eq!(t.slots.len(), 4);
}

#[test]
fn a_first_ever_value_is_a_newcomer_and_a_value_known_before_resumes_its_share() {
    let mut t = table_tracking(3);
    feed(&mut t, MONDAY, 4 * 60, &[("a", 60), ("b", 30), ("c", 6)]);
    let later = MONDAY + 4 * HOUR_MS;
    let c = value(&t, "c").unwrap();
    let learned = t.slots[c].share.longrun;
    assert!((0.05..0.08).contains(&learned), "{learned}");
    // A first-ever value busier than c's learned share takes c's place (the table holds three),
    // judged as a newcomer: at 40 a minute, it trips.
    let (refused, events) = feed(&mut t, later, 1, &[("a", 60), ("b", 30), ("new", 40)]);
    let new = value(&t, "new").expect("tracked");
    assert!(t.slots[new].newcomer && !t.slots[new].share.is_learned());
    assert!(value(&t, "c").is_none());
    assert!(refused > 0 && events.len() == 1, "{events:?}");
    assert_eq!(t.slots[new].state, State::Open);
    // It goes quiet. c comes back once new's cool-down has passed, takes the place new held
    // open (a runaway that went quiet holds no place) with the share it had learned: no newcomer.
    let after = later + t.settings.cooldown_ms + 60_000;
    feed(&mut t, after, 3, &[("a", 60), ("b", 30), ("c", 20)]);
    assert!(value(&t, "new").is_none());
    let c = value(&t, "c").expect("tracked again");
    assert!(!t.slots[c].newcomer);
    assert_eq!(t.slots[c].share.longrun, learned);
}

#[test]
fn a_safe_value_never_trips_and_a_cold_dimension_judges_nothing() {
    let settings = SliceSettings {
        safe: [("tenant".to_owned(), ["c".to_owned()].into())].into(),
        ..SliceSettings::for_tests()
    };
    let mut t = Table::new(Arc::from("tenant"), Arc::new(settings), MONDAY);
    // Cold: a value at 500 a minute from the start trips nothing.
    let (refused, _) = feed(&mut t, MONDAY, 30, &[("a", 60), ("b", 500)]);
    assert_eq!(refused, 0);
    feed(
        &mut t,
        MONDAY + 30 * 60_000,
        4 * 60,
        &[("a", 60), ("b", 30), ("c", 3)],
    );
    let (refused, events) = feed(
        &mut t,
        MONDAY + 5 * HOUR_MS,
        5,
        &[("a", 60), ("b", 30), ("c", 200)],
    );
    assert_eq!((refused, events.len()), (0, 0), "the safe value never trips");
}
