//! What the scale bench writes: its rows as CSV, tables in Markdown, and a plot (PNG) of
//! throughput against the store's size.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

/// What one row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Filling the store up to the size: commits of a task's four events, and the long
    /// stream's events in commits of 100 among them.
    Fill,
    /// Single-event commits (a note) to tasks picked at random across the store.
    Append,
    /// `Repository::load` of the 100-event stream, from its events.
    LoadStream,
    /// The same load, from the stream's snapshot (taken at its last event).
    LoadStreamSnapshot,
    /// `Repository::load` of the long stream, from its events (no limit).
    LoadLong,
    /// The long stream under `MaxEventsToLoad::snapshot(1_000)`, no snapshot yet: the
    /// load replays every event and saves a snapshot.
    LoadLongMaxFirst,
    /// The next load under the same limit: from that snapshot.
    LoadLongMaxNext,
    /// The long stream under `MaxEventsToLoad::refuse(1_000)`: refused after reading
    /// 1,001 events.
    LoadLongRefused,
    /// The projection catching up with the events appended since it last did.
    CatchUp,
    /// The projection rebuilt from the first event (a reset read model).
    FullCatchUp,
}

impl Measure {
    /// Every measure, in the order of the tables.
    pub const ALL: [Measure; 10] = [
        Measure::Fill,
        Measure::Append,
        Measure::LoadStream,
        Measure::LoadStreamSnapshot,
        Measure::LoadLong,
        Measure::LoadLongMaxFirst,
        Measure::LoadLongMaxNext,
        Measure::LoadLongRefused,
        Measure::CatchUp,
        Measure::FullCatchUp,
    ];

    /// The short name in the CSV.
    pub fn key(self) -> &'static str {
        match self {
            Measure::Fill => "fill",
            Measure::Append => "append",
            Measure::LoadStream => "load_100",
            Measure::LoadStreamSnapshot => "load_100_snapshot",
            Measure::LoadLong => "load_long",
            Measure::LoadLongMaxFirst => "load_long_max_first",
            Measure::LoadLongMaxNext => "load_long_max_next",
            Measure::LoadLongRefused => "load_long_refused",
            Measure::CatchUp => "catch_up",
            Measure::FullCatchUp => "full_catch_up",
        }
    }

    /// What the tables and the plot call it.
    pub fn label(self) -> &'static str {
        match self {
            Measure::Fill => "fill (4-event commits)",
            Measure::Append => "append (1-event commits, random streams)",
            Measure::LoadStream => "load 100-event stream",
            Measure::LoadStreamSnapshot => "load 100-event stream from snapshot",
            Measure::LoadLong => "load long stream (no limit)",
            Measure::LoadLongMaxFirst => "long stream, max 1,000: 1st load (replays, snapshots)",
            Measure::LoadLongMaxNext => "long stream, max 1,000: next load (snapshot)",
            Measure::LoadLongRefused => "long stream, refuse over 1,000",
            Measure::CatchUp => "catch-up (new events)",
            Measure::FullCatchUp => "full catch-up (from 0)",
        }
    }

    /// Whether its throughput is in events per second (else in loads per second).
    pub fn in_events(self) -> bool {
        matches!(
            self,
            Measure::Fill
                | Measure::Append
                | Measure::LoadLong
                | Measure::LoadLongMaxFirst
                | Measure::CatchUp
                | Measure::FullCatchUp
        )
    }

    fn color(self) -> RGBColor {
        match self {
            Measure::Fill => RGBColor(31, 119, 180),
            Measure::Append => RGBColor(255, 127, 14),
            Measure::LoadStream => RGBColor(44, 160, 44),
            Measure::LoadStreamSnapshot => RGBColor(214, 39, 40),
            Measure::LoadLong => RGBColor(148, 103, 189),
            Measure::LoadLongMaxFirst => RGBColor(140, 86, 75),
            Measure::LoadLongMaxNext => RGBColor(227, 119, 194),
            Measure::LoadLongRefused => RGBColor(127, 127, 127),
            Measure::CatchUp => RGBColor(188, 189, 34),
            Measure::FullCatchUp => RGBColor(23, 190, 207),
        }
    }
}

/// One measurement of one step at one size.
#[derive(Debug, Clone)]
pub struct Row {
    pub backend: &'static str,
    /// Events in the store when the step started (the nominal size).
    pub size: u64,
    pub measure: Measure,
    /// Events the step wrote, read or applied.
    pub events: u64,
    /// Operations: commits, loads or catch-ups.
    pub ops: u64,
    pub seconds: f64,
    /// The process's peak resident memory during the step (VmHWM, reset before it).
    pub peak_mib: f64,
    /// That peak less the resident memory when the step started.
    pub rise_mib: f64,
    /// Events in the long stream (for its loads) or in the step, for the tables.
    pub note: String,
}

impl Row {
    /// Events or loads per second, as the measure counts.
    pub fn rate(&self) -> f64 {
        let count = if self.measure.in_events() {
            self.events
        } else {
            self.ops
        };
        count as f64 / self.seconds.max(1e-9)
    }

    /// Microseconds per event.
    pub fn micros_per_event(&self) -> f64 {
        self.seconds * 1e6 / self.events.max(1) as f64
    }
}

/// `10k`, `1M`: a size as the bench names it.
pub fn size_name(size: u64) -> String {
    match size {
        s if s >= 1_000_000 && s % 1_000_000 == 0 => format!("{}M", s / 1_000_000),
        s if s >= 1_000 && s % 1_000 == 0 => format!("{}k", s / 1_000),
        s => s.to_string(),
    }
}

fn rate_text(rate: f64) -> String {
    match rate {
        r if r >= 1e6 => format!("{:.2} M", r / 1e6),
        r if r >= 1e3 => format!("{:.1} k", r / 1e3),
        r => format!("{r:.1}"),
    }
}

/// The CSV of every row.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "backend,size,measure,events,ops,seconds,rate,unit,us_per_event,peak_mib,rise_mib,note\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.6},{:.1},{},{:.3},{:.1},{:.1},{}",
            row.backend,
            row.size,
            row.measure.key(),
            row.events,
            row.ops,
            row.seconds,
            row.rate(),
            if row.measure.in_events() {
                "events/s"
            } else {
                "loads/s"
            },
            row.micros_per_event(),
            row.peak_mib,
            row.rise_mib,
            row.note
        );
    }
    out
}

/// The rows of a CSV that [`csv`] wrote (columns found by their header; a column it
/// lacks reads as 0 or empty).
pub fn parse_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("an empty CSV")?.split(',').collect();
    let column = |name: &str| header.iter().position(|column| *column == name);
    let mut rows = Vec::new();
    for (number, line) in lines
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
    {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |name: &str| column(name).and_then(|at| fields.get(at).copied());
        let number = |name: &str| -> Result<f64, String> {
            field(name).map_or(Ok(0.0), |text| {
                text.parse()
                    .map_err(|_| format!("line {}: {name} `{text}`", number + 2))
            })
        };
        let backend = match field("backend").ok_or("no backend column")? {
            "SQLite" => "SQLite",
            "PostgreSQL" => "PostgreSQL",
            other => Box::leak(other.to_owned().into_boxed_str()),
        };
        let key = field("measure").ok_or("no measure column")?;
        let measure = Measure::ALL
            .into_iter()
            .find(|measure| measure.key() == key)
            .ok_or_else(|| format!("unknown measure `{key}`"))?;
        rows.push(Row {
            backend,
            size: number("size")? as u64,
            measure,
            events: number("events")? as u64,
            ops: number("ops")? as u64,
            seconds: number("seconds")?,
            peak_mib: number("peak_mib")?,
            rise_mib: number("rise_mib")?,
            note: field("note").unwrap_or_default().to_owned(),
        });
    }
    Ok(rows)
}

/// One Markdown table per backend: a measure per line, a size per column, each cell the
/// throughput; then the peak memory of the size's steps.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut backends: Vec<&str> = rows.iter().map(|row| row.backend).collect();
    backends.dedup();
    for backend in backends {
        let mine: Vec<&Row> = rows.iter().filter(|row| row.backend == backend).collect();
        let mut sizes: Vec<u64> = mine.iter().map(|row| row.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let _ = writeln!(out, "**{backend}** (throughput at each store size)\n");
        let _ = write!(out, "| measure | unit |");
        for size in &sizes {
            let _ = write!(out, " {} |", size_name(*size));
        }
        let _ = write!(out, "\n|---|---|");
        for _ in &sizes {
            out.push_str("---:|");
        }
        out.push('\n');
        for measure in Measure::ALL {
            if !mine.iter().any(|row| row.measure == measure) {
                continue;
            }
            let unit = if measure.in_events() {
                "events/s"
            } else {
                "loads/s"
            };
            let _ = write!(out, "| {} | {unit} |", measure.label());
            for size in &sizes {
                match mine
                    .iter()
                    .find(|row| row.measure == measure && row.size == *size)
                {
                    Some(row) => {
                        let _ = write!(out, " {} |", rate_text(row.rate()));
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        let _ = write!(out, "| long stream's events | events |");
        for size in &sizes {
            let long = mine
                .iter()
                .find(|row| row.measure == Measure::LoadLong && row.size == *size)
                .map_or("–".to_owned(), |row| row.events.to_string());
            let _ = write!(out, " {long} |");
        }
        let _ = write!(out, "\n| peak memory of the steps (VmHWM) | MiB |");
        for size in &sizes {
            let peak = mine
                .iter()
                .filter(|row| row.size == *size)
                .map(|row| row.peak_mib)
                .fold(0.0, f64::max);
            let _ = write!(out, " {peak:.0} |");
        }
        let _ = write!(out, "\n| most a step added to it | MiB |");
        for size in &sizes {
            let rise = mine
                .iter()
                .filter(|row| row.size == *size)
                .map(|row| row.rise_mib)
                .fold(0.0, f64::max);
            let _ = write!(out, " {rise:.0} |");
        }
        let _ = write!(out, "\n| timed steps, summed (each load once) | s |");
        for size in &sizes {
            let seconds: f64 = mine
                .iter()
                .filter(|row| row.size == *size)
                .map(|row| row.seconds)
                .sum();
            let _ = write!(out, " {seconds:.1} |");
        }
        out.push_str("\n\n");
    }
    out
}

/// Loads a TrueType font for the plot's text: `SCALE_FONT`, else a sans-serif font of
/// the usual Debian packages (`fonts-dejavu-core`, `fonts-liberation`).
fn register_font() -> Result<(), String> {
    let candidates: Vec<PathBuf> = std::env::var_os("SCALE_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            ]
            .map(PathBuf::from),
        )
        .collect();
    let (path, bytes) = candidates
        .iter()
        .find_map(|path| std::fs::read(path).ok().map(|bytes| (path, bytes)))
        .ok_or_else(|| {
            format!(
                "no font for the plot's text in {candidates:?}: install fonts-dejavu-core or set SCALE_FONT to a .ttf file"
            )
        })?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
        .map_err(|_| format!("{} is not a TrueType font", path.display()))
}

/// The plot: events per second (left) and loads per second (right) against the store's
/// size, both axes logarithmic; a line per measure and backend (SQLite solid with
/// circles, PostgreSQL thin with triangles).
pub fn plot(rows: &[Row], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    register_font()?;
    let root = BitMapBackend::new(path, (1800, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(50);
    title.titled(
        "factum: throughput against the store's size (SQLite solid with circles, PostgreSQL thin with triangles)",
        ("sans-serif", 24),
    )?;
    let (left, right) = body.split_horizontally(900);
    let sizes: Vec<u64> = rows.iter().map(|row| row.size).collect();
    let (min_size, max_size) = (
        sizes.iter().copied().min().unwrap_or(10_000) as f64,
        sizes.iter().copied().max().unwrap_or(10_000_000) as f64,
    );
    for (area, in_events, caption) in [
        (&left, true, "events per second"),
        (&right, false, "loads per second"),
    ] {
        let mine: Vec<&Row> = rows
            .iter()
            .filter(|row| row.measure.in_events() == in_events)
            .collect();
        let rates = mine.iter().map(|row| row.rate());
        let (low, high) = rates.fold((f64::MAX, 0.0f64), |(low, high), rate| {
            (low.min(rate), high.max(rate))
        });
        // Room below the data for the legend: about a third of the height.
        let (low, high) = if mine.is_empty() {
            (1.0, 10.0)
        } else {
            let decades = (high / low).log10().max(1.0);
            (low / 10f64.powf(0.55 * decades + 0.3), high * 2.0)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (min_size / 1.5..max_size * 1.5).log_scale(),
                (low..high).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("events in the store")
            .y_desc(caption)
            // Powers of ten only: the sizes the bench runs.
            .x_label_formatter(&|size| {
                let exponent = size.log10().round();
                if (size / 10f64.powf(exponent) - 1.0).abs() < 1e-6 {
                    size_name(size.round() as u64)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|rate| rate_text(*rate))
            .label_style(("sans-serif", 15))
            .draw()?;
        let mut backends: Vec<&str> = mine.iter().map(|row| row.backend).collect();
        backends.dedup();
        for measure in Measure::ALL
            .into_iter()
            .filter(|measure| measure.in_events() == in_events)
        {
            for backend in &backends {
                let points: Vec<(f64, f64)> = mine
                    .iter()
                    .filter(|row| row.measure == measure && row.backend == *backend)
                    .map(|row| (row.size as f64, row.rate()))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let color = measure.color();
                let solid = *backend == "SQLite";
                let series = chart.draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(if solid { 3 } else { 1 }),
                ))?;
                series
                    .label(format!("{} ({backend})", measure.label()))
                    .legend(move |(x, y)| {
                        PathElement::new(
                            vec![(x, y), (x + 20, y)],
                            color.stroke_width(if solid { 3 } else { 1 }),
                        )
                    });
                if solid {
                    chart.draw_series(
                        points
                            .iter()
                            .map(|&point| Circle::new(point, 4, color.filled())),
                    )?;
                } else {
                    chart.draw_series(
                        points
                            .iter()
                            .map(|&point| TriangleMarker::new(point, 5, color.filled())),
                    )?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
