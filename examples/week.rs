//! The picture in the guide's "How detection works" (src/guide/detection.md): a week of one
//! kind, replayed on the real engine after two weeks of learning, drawn as an SVG. For the
//! minute and the hour windows it shows the sends in the window, what the window was expected
//! to hold at the time, and the limit it could reach; a trip is marked where it happened. The
//! week holds a runaway at the kind's quiet hour (Tuesday 03:00) and a bug that ramps up
//! through Thursday morning.
//!
//! Run with `cargo run --release --example week [OUT.svg]` (default `docs/detection-week.svg`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;

use spikebreaker::status::{Event, KindStatus, Timescale, Window};
use spikebreaker::{Breaker, Config, ManualClock};
use support::{
    DAY_MS, HOUR_MS, MINUTE_MS, MONDAY_MS, Profile, Traffic, WEEK_MS, merge, poisson_sends, tagged,
};

const KIND: &str = "email.receipt";
/// Sample the kind every this often.
const EVERY_MS: u64 = 5 * MINUTE_MS;

/// One sample: the time and the kind's minute and hour windows.
struct Sample {
    t_ms: u64,
    minute: Window,
    hour: Window,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs/detection-week.svg".to_owned());
    let profile = Profile::daily(KIND, 100.0, 8.0);
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
    let trips = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Event>::new()));
    let sink = std::sync::Arc::clone(&trips);
    breaker
        .subscribe(move |event| {
            if event.is_trip() {
                sink.lock().unwrap().push(event.clone());
            }
        })
        .detach();
    let kind = breaker.kind(KIND);

    // Two weeks of learning.
    let week = MONDAY_MS + 2 * WEEK_MS;
    for (t, _) in Traffic::new(vec![profile.clone()], 1, MONDAY_MS, week) {
        clock.set(t);
        let _ = kind.check();
    }

    // The week drawn: ordinary traffic, a quiet-hour runaway, a ramp.
    let quiet = week + DAY_MS + 3 * HOUR_MS;
    let runaway = poisson_sends(|_| 300.0, 2, quiet, quiet + 30 * MINUTE_MS);
    let ramp_from = week + 3 * DAY_MS + 8 * HOUR_MS;
    let base = profile.rate_per_minute(ramp_from);
    let ramp = poisson_sends(
        move |t| base * (1.3f64.powf((t - ramp_from) as f64 / (10 * MINUTE_MS) as f64) - 1.0),
        3,
        ramp_from,
        ramp_from + 2 * HOUR_MS,
    );
    let ordinary = Traffic::new(vec![profile], 4, week, week + WEEK_MS).map(|(t, _)| t);
    let sends = merge(
        tagged(ordinary, ()),
        tagged(merge(tagged(runaway, ()), tagged(ramp, ())).map(|(t, _)| t), ()),
    );
    let mut samples = Vec::new();
    let mut next = week;
    for (t, ()) in sends {
        while t >= next {
            clock.set(next);
            samples.push(sample(next, &kind.status()));
            next += EVERY_MS;
        }
        clock.set(t);
        let _ = kind.check();
    }
    let trips = trips.lock().unwrap().clone();
    let svg = draw(&samples, &trips, week);
    if let Some(folder) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(&out, svg)?;
    println!(
        "{} samples, {} trips, written to {out}",
        samples.len(),
        trips.len()
    );
    for trip in &trips {
        println!("  {trip}");
    }
    Ok(())
}

fn sample(t_ms: u64, status: &KindStatus) -> Sample {
    Sample {
        t_ms,
        minute: *status.minute(),
        hour: *status.hour(),
    }
}

/// Two panels (minute window, hour window), a log scale each, the days along the bottom.
fn draw(samples: &[Sample], trips: &[Event], from_ms: u64) -> String {
    const WIDTH: f64 = 1000.0;
    const PANEL: f64 = 200.0;
    const LEFT: f64 = 60.0;
    const TOP: f64 = 50.0;
    const GAP: f64 = 50.0;
    let plot_width = WIDTH - LEFT - 20.0;
    let x = |t: u64| LEFT + (t - from_ms) as f64 / WEEK_MS as f64 * plot_width;
    let mut svg = String::new();
    let height = TOP + 2.0 * PANEL + GAP + 60.0;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="18" font-size="14" font-weight="bold">A week of {KIND}: sends in the window, what was expected, the limit; trips marked</text>"#
    );
    for (index, timescale) in [Timescale::Minute, Timescale::Hour].into_iter().enumerate() {
        let top = TOP + index as f64 * (PANEL + GAP);
        let pick = |s: &Sample| if index == 0 { s.minute } else { s.hour };
        let highest = samples
            .iter()
            .map(|s| {
                let w = pick(s);
                let limit = if w.threshold == u64::MAX {
                    0.0
                } else {
                    w.threshold as f64
                };
                (w.window_count as f64).max(limit).max(w.expected)
            })
            .fold(10.0, f64::max);
        let y = |v: f64| top + PANEL - (v.max(1.0).log10() / highest.log10()) * PANEL;
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL}" fill="none" stroke="#ccc"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}" font-weight="bold">{} window (log scale)</text>"#,
            top - 6.0,
            timescale
        );
        let mut tick = 1.0;
        while tick <= highest {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#666">{tick}</text>"##,
                LEFT + plot_width,
                LEFT - 6.0,
                y(tick) + 4.0,
                y = y(tick)
            );
            tick *= 10.0;
        }
        let line = |value: &dyn Fn(&Window) -> Option<f64>, colour: &str, dash: &str, svg: &mut String| {
            let points: Vec<String> = samples
                .iter()
                .filter_map(|s| value(&pick(s)).map(|v| format!("{:.1},{:.1}", x(s.t_ms), y(v))))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}"/>"#,
                points.join(" ")
            );
        };
        line(&|w: &Window| Some(w.expected), "#888", "4 3", &mut svg);
        line(
            &|w: &Window| (w.threshold != u64::MAX).then_some(w.threshold as f64),
            "#d62728",
            "",
            &mut svg,
        );
        line(&|w: &Window| Some(w.window_count as f64), "#1f77b4", "", &mut svg);
        for trip in trips.iter().filter(|t| t.window.timescale == timescale) {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1}" stroke="#ff7f0e" stroke-width="2"/><text x="{2:.1}" y="{3}" fill="#ff7f0e">trip</text>"##,
                x(trip.at_ms),
                top + PANEL,
                x(trip.at_ms) + 3.0,
                top + 12.0
            );
        }
    }
    let bottom = TOP + 2.0 * PANEL + GAP;
    for day in 0..7u64 {
        let t = from_ms + day * DAY_MS;
        let name = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day as usize];
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{bottom}" stroke="#ddd"/><text x="{1:.1}" y="{2}" fill="#444">{name}</text>"##,
            x(t),
            x(t) + 4.0,
            bottom + 16.0
        );
    }
    let legend_y = bottom + 40.0;
    for (i, (colour, dash, label)) in [
        ("#1f77b4", "", "sends in the window"),
        ("#888", "4 3", "expected now"),
        ("#d62728", "", "limit (one more trips)"),
        ("#ff7f0e", "", "trip"),
    ]
    .into_iter()
    .enumerate()
    {
        let lx = LEFT + i as f64 * 220.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}">{label}</text>"#,
            lx + 30.0,
            lx + 36.0,
            legend_y + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
