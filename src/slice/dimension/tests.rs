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
