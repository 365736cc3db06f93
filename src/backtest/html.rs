//! A replay drawn as one self-contained HTML page: a summary table, kinds needing attention
//! first, then per kind a chart of its minute, hour and day windows against what was expected
//! and the limit, with trips, open spells and blocked sends marked. Inline SVG and a few lines
//! of inline script (a filter); nothing is fetched, so the page reads offline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use super::{BacktestReport, KindReport, Timeline};
use crate::observe::{Account, Window};
use crate::state::State;

/// Points drawn per chart at most: a 30-day log with hundreds of kinds stays a few megabytes.
const POINTS: usize = 360;
const WIDTH: u64 = 960;
const LEFT: u64 = 52;
const PLOT: u64 = WIDTH - LEFT - 12;
const PANEL: u64 = 86;
const GAP: u64 = 22;
const TOP: u64 = 16;
const TIMESCALES: [&str; 3] = ["minute", "hour", "day"];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:22px}h2{font-size:17px;margin:28px 0 4px}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e4e4e4;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.hot td:first-child{border-left:4px solid #d62728}\
.why{color:#555;font-size:12px}.legend span{margin-right:18px}.legend i{display:inline-block;width:22px;height:0;\
vertical-align:middle;margin-right:5px;border-top:2px solid}svg{display:block;margin:4px 0}\
#filter{padding:4px 8px;width:300px;margin:8px 0}.quiet{color:#777}";

/// Writes `report` as an HTML page, with a chart per kind from `timelines` (a kind without one
/// gets a line saying so), and the kinds of a folded report ([`BacktestReport::fold`]) summed in
/// the summary's last row. The page is self-contained: inline SVG, inline style, a small inline
/// script that filters kinds by name; nothing is loaded from anywhere.
///
/// ```
/// use spikebreaker::Config;
/// use spikebreaker::backtest::{Backtest, write_html};
///
/// let mut backtest = Backtest::new(Config::default())?;
/// backtest.record_timelines();
/// for t in 0..600u64 {
///     let _ = backtest.check(t * 100, "job.runaway");
/// }
/// let mut page = Vec::new();
/// write_html(&backtest.report(), &backtest.timelines(), &mut page)?;
/// let page = String::from_utf8(page)?;
/// assert!(page.contains("job.runaway") && page.contains("<svg"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_html(
    report: &BacktestReport,
    timelines: &BTreeMap<String, Timeline>,
    out: &mut impl Write,
) -> io::Result<()> {
    let span = span(timelines, report);
    let mut kinds: Vec<(&String, &KindReport)> = report.kinds.iter().collect();
    kinds.sort_by_key(|(name, kind)| {
        (
            !needs_attention(kind),
            std::cmp::Reverse((kind.blocked, kind.trips)),
            *name,
        )
    });
    let folded = report.folded.clone().unwrap_or_default();
    let (trips, blocked): (u64, u64) = kinds
        .iter()
        .fold((folded.trips, folded.blocked), |(t, b), (_, k)| {
            (t + k.trips, b + k.blocked)
        });

    let mut page = String::with_capacity(64 * 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str(
        "<meta name=\"viewport\" content=\"width=device-width\"><title>spikebreaker backtest</title>",
    );
    let _ = write!(page, "<style>{STYLE}</style></head>\n<body>\n");
    let _ = writeln!(
        page,
        "<h1>What the breaker would have done</h1>\n<p>{} sends of {} kinds{}: <b>{trips}</b> trips, <b>{}</b> sends blocked{}.</p>",
        thousands(report.sends),
        thousands(kinds.len() as u64 + folded.kinds),
        span.map_or(String::new(), |(from, to)| format!(
            ", {} to {} UTC",
            date_time(from),
            date_time(to)
        )),
        thousands(blocked),
        if report.skipped_lines > 0 {
            format!(", {} bad lines skipped", thousands(report.skipped_lines))
        } else {
            String::new()
        }
    );
    if folded.kinds > 0 {
        let _ = writeln!(
            page,
            "<p class=\"folded\">Shown one by one: the {} kinds with the most trips, then sends blocked, then sends. \
             The other {} are summed in the last row of the summary, without charts.</p>",
            thousands(kinds.len() as u64),
            thousands(folded.kinds)
        );
    }
    page.push_str("<input id=\"filter\" type=\"search\" placeholder=\"Filter kinds by name\" aria-label=\"Filter kinds by name\">\n");
    page.push_str("<table id=\"summary\"><thead><tr><th>kind</th><th>state at the end</th><th class=\"n\">sends</th><th class=\"n\">blocked</th><th class=\"n\">trips</th><th class=\"n\">time open</th><th>trips, and the window each was judged on</th></tr></thead><tbody>\n");
    for (index, (name, kind)) in kinds.iter().enumerate() {
        summary_row(&mut page, index, name, kind, span);
    }
    if folded.kinds > 0 {
        let _ = writeln!(
            page,
            "<tr class=\"folded\" data-kind=\"\"><td>{} other kinds, summed</td><td></td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td></td><td></td></tr>",
            thousands(folded.kinds),
            thousands(folded.attempted),
            thousands(folded.blocked),
            folded.trips
        );
    }
    page.push_str("</tbody></table>\n");
    page.push_str(LEGEND);
    out.write_all(page.as_bytes())?;
    for (index, (name, kind)) in kinds.iter().enumerate() {
        page.clear();
        section(&mut page, index, name, kind, timelines.get(*name), span);
        out.write_all(page.as_bytes())?;
    }
    out.write_all(SCRIPT.as_bytes())?;
    out.write_all(b"</body></html>\n")
}

const LEGEND: &str = "<p class=\"legend\"><span><i style=\"border-color:#1f77b4\"></i>sends in the window (the fullest in each slot)</span>\
<span><i style=\"border-color:#999;border-top-style:dashed\"></i>expected</span><span><i style=\"border-color:#d62728\"></i>limit: one more trips</span>\
<span><i style=\"border-color:#ff7f0e\"></i>trip</span><span><i style=\"border-color:#fbd0d0;border-top-width:8px\"></i>open</span>\
<span><i style=\"border-color:#d62728;border-top-width:6px\"></i>sends blocked</span></p>\n";

/// Marks the page as drawn (`data-charts` on the body: the charts found), and filters kinds.
const SCRIPT: &str = "<script>\n(function () {\n  var kinds = document.querySelectorAll('section.kind');\n  var charts = 0;\n  kinds.forEach(function (k) { if (k.querySelector('svg.chart')) charts++; });\n  document.body.setAttribute('data-kinds', kinds.length);\n  document.body.setAttribute('data-charts', charts);\n  var rows = document.querySelectorAll('#summary tbody tr');\n  document.getElementById('filter').addEventListener('input', function (e) {\n    var q = e.target.value.toLowerCase();\n    var hide = function (el) { el.hidden = q !== '' && el.getAttribute('data-kind').toLowerCase().indexOf(q) < 0; };\n    kinds.forEach(hide);\n    rows.forEach(hide);\n  });\n})();\n</script>\n";

fn needs_attention(kind: &KindReport) -> bool {
    kind.trips > 0
        || kind.blocked > 0
        || kind.state != State::Closed
        || !kind.transitions.is_empty()
        || kind.slice_trips > 0
}

/// The log's first and last slot, from the timelines (or the transitions without them).
fn span(timelines: &BTreeMap<String, Timeline>, report: &BacktestReport) -> Option<(u64, u64)> {
    let points = timelines.values().filter_map(|timeline| {
        let first = timeline.points().first()?;
        let last = timeline.points().last()?;
        Some((first.at_ms, last.at_ms + timeline.slot_ms()))
    });
    let events = report
        .kinds
        .values()
        .flat_map(|kind| kind.transitions.iter().map(|e| (e.at_ms, e.at_ms)));
    points
        .chain(events)
        .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
        .filter(|(from, to)| to > from)
}

/// Open spells from the transitions, up to `end_ms` for one still open at the end.
fn open_spells(kind: &KindReport, end_ms: u64) -> Vec<(u64, u64)> {
    let mut spells = Vec::new();
    let mut since = None;
    for event in &kind.transitions {
        match (event.from == State::Open, event.to == State::Open) {
            (false, true) => since = Some(event.at_ms),
            (true, false) => {
                if let Some(from) = since.take() {
                    spells.push((from, event.at_ms));
                }
            }
            _ => {}
        }
    }
    if let Some(from) = since {
        spells.push((from, end_ms.max(from)));
    }
    spells
}

fn summary_row(page: &mut String, index: usize, name: &str, kind: &KindReport, span: Option<(u64, u64)>) {
    let open_ms: u64 = open_spells(kind, span.map_or(0, |s| s.1))
        .iter()
        .map(|(a, b)| b - a)
        .sum();
    let hot = if needs_attention(kind) {
        " class=\"hot\""
    } else {
        ""
    };
    let name = escape(name);
    let _ = write!(
        page,
        "<tr{hot} data-kind=\"{name}\"><td><a href=\"#k{index}\">{name}</a></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"why\">",
        kind.state,
        thousands(kind.attempted),
        thousands(kind.blocked),
        kind.trips,
        if open_ms > 0 {
            duration(open_ms)
        } else {
            String::new()
        },
    );
    let trips: Vec<_> = kind.transitions.iter().filter(|e| e.is_trip()).collect();
    for trip in trips.iter().take(3) {
        let _ = write!(
            page,
            "{} {}: {}<br>",
            date_time(trip.at_ms),
            trip.reason,
            escape(&trip.window.to_string())
        );
    }
    if trips.len() > 3 {
        let _ = write!(page, "and {} more", trips.len() - 3);
    }
    if kind.slice_trips > 0 {
        let _ = write!(
            page,
            "{} slice {}, {} sends refused by slices",
            kind.slice_trips,
            if kind.slice_trips == 1 { "trip" } else { "trips" },
            thousands(kind.slice_blocked)
        );
    }
    page.push_str("</td></tr>\n");
}

/// The kind's slices that tripped: which, when, and what each was judged on.
fn slice_table(page: &mut String, kind: &KindReport) {
    let trips: Vec<_> = kind.slice_transitions.iter().filter(|e| e.is_trip()).collect();
    if trips.is_empty() {
        return;
    }
    let _ = write!(
        page,
        "<p>Slices that tripped: {} sends refused by them, the rest of the kind flowing.</p>\n\
         <table class=\"slices\"><thead><tr><th>slice</th><th>tripped</th><th>judged on</th></tr></thead><tbody>\n",
        thousands(kind.slice_blocked)
    );
    for trip in trips.iter().take(20) {
        let slice = trip.slice.as_ref().map(ToString::to_string).unwrap_or_default();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"why\">{} ({})</td></tr>",
            escape(&slice),
            date_time(trip.at_ms),
            escape(&Account(trip).to_string()),
            trip.reason
        );
    }
    if trips.len() > 20 {
        let _ = writeln!(
            page,
            "<tr><td colspan=\"3\">and {} more</td></tr>",
            trips.len() - 20
        );
    }
    page.push_str("</tbody></table>\n");
}

fn section(
    page: &mut String,
    index: usize,
    name: &str,
    kind: &KindReport,
    timeline: Option<&Timeline>,
    span: Option<(u64, u64)>,
) {
    let escaped = escape(name);
    let _ = writeln!(
        page,
        "<section class=\"kind\" id=\"k{index}\" data-kind=\"{escaped}\"><h2>{escaped}</h2><p class=\"quiet\">{} sends, {} blocked, {} {}; {} at the end</p>",
        thousands(kind.attempted),
        thousands(kind.blocked),
        kind.trips,
        if kind.trips == 1 { "trip" } else { "trips" },
        kind.state
    );
    match (timeline, span) {
        (Some(timeline), Some(span)) if !timeline.points().is_empty() => {
            chart(page, kind, &timeline.coarsened(POINTS), span);
        }
        _ => page.push_str("<p class=\"quiet\">No chart: no timeline was recorded for this kind.</p>\n"),
    }
    let trips: Vec<_> = kind.transitions.iter().filter(|e| e.is_trip()).collect();
    if !trips.is_empty() {
        page.push_str("<ul class=\"why\">");
        for trip in trips.iter().take(20) {
            let _ = write!(page, "<li>{}</li>", escape(&trip.to_string()));
        }
        if trips.len() > 20 {
            let _ = write!(page, "<li>and {} more</li>", trips.len() - 20);
        }
        page.push_str("</ul>\n");
    }
    slice_table(page, kind);
    page.push_str("</section>\n");
}

/// Three panels (minute, hour, day windows), a log scale each, the time along the bottom.
fn chart(page: &mut String, kind: &KindReport, timeline: &Timeline, (from, to): (u64, u64)) {
    let height = TOP + 3 * (PANEL + GAP) + 8;
    let x = |t: u64| {
        LEFT + (t.saturating_sub(from).min(to - from) as u128 * PLOT as u128 / (to - from) as u128) as u64
    };
    let _ = write!(
        page,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" font-size=\"11\" font-family=\"system-ui,sans-serif\" role=\"img\" aria-label=\"windows of {}\">",
        escape(&kind_label(kind))
    );
    let bottom = TOP + 3 * (PANEL + GAP) - GAP;
    for (start, end) in open_spells(kind, to) {
        let (a, b) = (x(start), x(end).max(x(start) + 1));
        let _ = write!(
            page,
            "<rect x=\"{a}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#fbd0d0\"><title>open {} to {}</title></rect>",
            b - a,
            bottom - TOP,
            date_time(start),
            date_time(end)
        );
    }
    days(page, from, to, &x, bottom);
    let points = timeline.points();
    for (panel, label) in TIMESCALES.iter().enumerate() {
        let top = TOP + panel as u64 * (PANEL + GAP);
        let highest = points
            .iter()
            .filter_map(|p| p.windows[panel])
            .map(|w| {
                (w.window_count as f64)
                    .max(w.expected)
                    .max(limit(&w).unwrap_or(0.0))
            })
            .fold(10.0, f64::max);
        let scale = (highest + 1.0).log10();
        let y = |v: f64| top + PANEL - ((v.max(0.0) + 1.0).log10() / scale * PANEL as f64).round() as u64;
        let _ = write!(
            page,
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{PLOT}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#ccc\"/><text x=\"{LEFT}\" y=\"{}\" font-weight=\"bold\">{label} window</text>",
            top - 4
        );
        let mut tick = 1.0;
        while tick <= highest {
            let at = y(tick);
            let _ = write!(
                page,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{at}\" y2=\"{at}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#777\">{}</text>",
                LEFT + PLOT,
                LEFT - 4,
                at + 4,
                short(tick as u64)
            );
            tick *= 10.0;
        }
        let series = |value: &dyn Fn(&Window) -> Option<f64>| -> Vec<(u64, u64)> {
            points
                .iter()
                .filter_map(|p| {
                    let v = value(&p.windows[panel]?)?;
                    Some((x(p.at_ms + timeline.slot_ms() / 2), y(v)))
                })
                .collect()
        };
        polyline(
            page,
            &series(&|w| Some(w.expected)),
            "#999",
            " stroke-dasharray=\"4 3\"",
        );
        polyline(page, &series(&limit), "#d62728", "");
        polyline(page, &series(&|w| Some(w.window_count as f64)), "#1f77b4", "");
        for trip in kind
            .transitions
            .iter()
            .filter(|e| e.is_trip() && e.window.timescale.as_str() == *label)
        {
            let at = x(trip.at_ms);
            let _ = write!(
                page,
                "<line x1=\"{at}\" x2=\"{at}\" y1=\"{top}\" y2=\"{}\" stroke=\"#ff7f0e\" stroke-width=\"2\"><title>{}</title></line>",
                top + PANEL,
                escape(&trip.to_string())
            );
        }
    }
    for point in points.iter().filter(|p| p.blocked > 0) {
        let (a, b) = (
            x(point.at_ms),
            x(point.at_ms + timeline.slot_ms()).max(x(point.at_ms) + 1),
        );
        let _ = write!(
            page,
            "<rect x=\"{a}\" y=\"{}\" width=\"{}\" height=\"5\" fill=\"#d62728\"><title>{} blocked from {}</title></rect>",
            bottom + 1,
            b - a,
            thousands(point.blocked),
            date_time(point.at_ms)
        );
    }
    page.push_str("</svg>\n");
}

/// The kind's figures in words, for a screen reader.
fn kind_label(kind: &KindReport) -> String {
    format!(
        "{} sends, {} blocked, {} trips",
        kind.attempted, kind.blocked, kind.trips
    )
}

/// A window's limit, if the timescale is judged.
fn limit(window: &Window) -> Option<f64> {
    (window.threshold != u64::MAX).then_some(window.threshold as f64)
}

/// A line through `points`, leaving out the middle of flat runs.
fn polyline(page: &mut String, points: &[(u64, u64)], colour: &str, extra: &str) {
    if points.is_empty() {
        return;
    }
    let _ = write!(
        page,
        "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{extra} points=\""
    );
    for (i, &(x, y)) in points.iter().enumerate() {
        let flat = i > 0 && i + 1 < points.len() && points[i - 1].1 == y && points[i + 1].1 == y;
        if !flat {
            let _ = write!(page, "{x},{y} ");
        }
    }
    page.pop();
    page.push_str("\"/>");
}

/// Day lines, labelled at most about twelve times across the chart.
fn days(page: &mut String, from: u64, to: u64, x: &dyn Fn(u64) -> u64, bottom: u64) {
    const DAY: u64 = 86_400_000;
    let days = (to - from) / DAY + 1;
    let every = days.div_ceil(12).max(1);
    let mut day = from.div_ceil(DAY);
    while day * DAY <= to {
        let at = x(day * DAY);
        let _ = write!(
            page,
            "<line x1=\"{at}\" x2=\"{at}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"#eee\"/>"
        );
        // A label needs about 70 units: none past the chart's right edge.
        if day % every == 0 && at + 70 <= WIDTH {
            let _ = write!(
                page,
                "<text x=\"{}\" y=\"{}\" fill=\"#555\">{}</text>",
                at + 2,
                bottom + 16,
                date(day * DAY)
            );
        }
        day += 1;
    }
    if (to - from) < DAY {
        let _ = write!(
            page,
            "<text x=\"{LEFT}\" y=\"{}\" fill=\"#555\">{}</text>",
            bottom + 16,
            date_time(from)
        );
    }
}

/// `1`, `10`, `1k`, `10k`, `1M` for the scale.
fn short(value: u64) -> String {
    match value {
        v if v >= 1_000_000 => format!("{}M", v / 1_000_000),
        v if v >= 1_000 => format!("{}k", v / 1_000),
        v => v.to_string(),
    }
}

/// `12,345`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `2 h 05 min`, `12 min`, `40 s`.
fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The civil date of a time in milliseconds since the Unix epoch (UTC): `(year, month, day)`.
fn civil(ms: u64) -> (u64, u64, u64) {
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (never negative here).
    let z = ms / 86_400_000 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

/// `Mon 06 Jan`.
fn date(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, month, day) = civil(ms);
    format!(
        "{} {day:02} {}",
        DAYS[(ms / 86_400_000 % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

/// `2025-01-06 03:00`.
fn date_time(ms: u64) -> String {
    let (year, month, day) = civil(ms);
    let minutes = ms / 60_000;
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}",
        minutes / 60 % 24,
        minutes % 60
    )
}

/// Text safe in HTML content and in a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_numbers_read_as_a_person_writes_them() {
        assert_eq!(date_time(1_736_121_600_000 + 3 * 3_600_000), "2025-01-06 03:00");
        assert_eq!(date(1_736_121_600_000), "Mon 06 Jan");
        assert_eq!(date_time(0), "1970-01-01 00:00");
        assert_eq!(date_time(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration(7_500_000), "2 h 05 min");
        assert_eq!(short(10_000), "10k");
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
