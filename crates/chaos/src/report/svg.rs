//! The parts of a plot, written by hand as SVG text: a linear scale, axes with ticks, lines,
//! stacked bars, the fault's band and the proxy's events as markers, and a legend.
//!
//! No charting crate: the page must be one self-contained file that needs no script to show
//! its plots, and what is drawn here is small. Every point drawn also carries its figure in
//! `data-series`, `data-t` and `data-value`, so a test (or a curious reader's devtools) reads
//! back exactly the numbers the JSON holds. Those are written as Rust prints an `f64`, which
//! reads back to the same value.
//!
//! NaN and infinities are never written: a scale maps them to its lower end, and the figures
//! they would label are left out by the callers.

use std::fmt::Write;

use super::escape::escape;
use super::model::{FaultWindow, ProxyEvent};

/// A plot's size, in SVG user units (CSS pixels at 100%).
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 280.0;
/// The room around the data: tick labels left and below, the legend above.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 44.0;
/// The largest figure a plot scales to: beyond it, points are drawn at the top.
const CEILING: f64 = 1e12;

/// A linear map from figures (the domain) to SVG coordinates (the range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scale {
    from: (f64, f64),
    to: (f64, f64),
}

impl Scale {
    /// A scale from `from` to `to`; an empty, reversed or non-finite domain becomes `[low, low + 1]`.
    pub(super) fn new(from: (f64, f64), to: (f64, f64)) -> Self {
        let low = if from.0.is_finite() { from.0 } else { 0.0 };
        let high = if from.1.is_finite() && from.1 > low {
            from.1
        } else {
            low + 1.0
        };
        Self {
            from: (low, high),
            to,
        }
    }

    /// Where `value` goes: clamped to the domain, and to its lower end when not finite.
    pub(super) fn at(&self, value: f64) -> f64 {
        let (low, high) = self.from;
        let value = if value.is_finite() {
            value.clamp(low, high)
        } else {
            low
        };
        let share = (value - low) / (high - low);
        let share = if share.is_finite() { share } else { 0.0 };
        self.to.0 + share * (self.to.1 - self.to.0)
    }
}

/// The step between about `count` ticks from 0 to `max`: 1, 2 or 5 times a power of ten.
pub(super) fn tick_step(max: f64, count: f64) -> f64 {
    let raw = (max / count).max(f64::MIN_POSITIVE);
    if !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power);
    if step.is_finite() && step > 0.0 {
        step
    } else {
        1.0
    }
}

/// The top of an axis that shows `max`: the first tick at or above it (at least `floor`).
pub(super) fn nice_max(max: f64, floor: f64) -> f64 {
    let max = if max.is_finite() {
        max.clamp(floor, CEILING)
    } else {
        floor
    };
    let step = tick_step(max, 5.0);
    ((max / step).ceil() * step).max(floor)
}

/// A tick's label: whole numbers plainly, fractions with up to two decimals, huge ones in e-notation.
pub(super) fn tick_label(value: f64) -> String {
    if value.abs() >= 1e6 {
        format!("{value:.1e}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A coordinate, to a tenth of a unit.
fn at(value: f64) -> String {
    format!("{value:.1}")
}

/// One plot being drawn: its two scales and the SVG text so far.
#[derive(Debug)]
pub(super) struct Plot {
    x: Scale,
    y: Scale,
    svg: String,
}

/// What a plot is: which experiment, which kind, its title and the top of each axis.
#[derive(Debug)]
pub(super) struct Frame<'a> {
    /// The experiment's name (`data-experiment`).
    pub experiment: &'a str,
    /// `latency`, `errors` or `sources` (`data-plot`).
    pub kind: &'a str,
    /// The title above the plot, and its accessible name.
    pub title: &'a str,
    /// Seconds the x axis covers, from 0.
    pub seconds: f64,
    /// The top of the y axis (see [`nice_max`]).
    pub y_max: f64,
    /// The y axis's unit, written beside it.
    pub y_unit: &'a str,
}

impl Plot {
    /// An empty plot with its title, the fault's band, the grid and the axes.
    pub(super) fn new(frame: &Frame<'_>, fault: Option<FaultWindow>) -> Self {
        let x = Scale::new((0.0, frame.seconds), (LEFT, WIDTH - RIGHT));
        let y = Scale::new((0.0, frame.y_max), (HEIGHT - BOTTOM, TOP));
        let mut svg = String::new();
        let title = escape(frame.title);
        let _ = write!(
            svg,
            r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" data-experiment="{}" data-plot="{}"><title>{title}</title>"#,
            escape(frame.experiment),
            escape(frame.kind),
        );
        let _ = write!(
            svg,
            r#"<text class="plot-title" x="{LEFT}" y="16">{title}</text>"#
        );
        let mut plot = Self { x, y, svg };
        plot.band(fault);
        plot.axes(frame.y_unit);
        plot
    }

    /// The fault's window, shaded, with its bounds in `data-start`/`data-end`.
    fn band(&mut self, fault: Option<FaultWindow>) {
        let Some(window) = fault else { return };
        if !(window.start_s.is_finite() && window.end_s.is_finite()) {
            return;
        }
        let (left, right) = (self.x.at(window.start_s), self.x.at(window.end_s));
        let (top, bottom) = (self.y.to.1, self.y.to.0);
        let _ = write!(
            self.svg,
            r#"<rect class="fault" x="{}" y="{}" width="{}" height="{}" data-start="{}" data-end="{}"><title>fault in force from {:.1} s to {:.1} s</title></rect>"#,
            at(left),
            at(top),
            at((right - left).max(1.0)),
            at(bottom - top),
            window.start_s,
            window.end_s,
            window.start_s,
            window.end_s,
        );
    }

    /// The grid, the ticks with their labels, and each axis's unit.
    fn axes(&mut self, y_unit: &str) {
        let (x0, x1) = (self.x.to.0, self.x.to.1);
        let (y0, y1) = (self.y.to.0, self.y.to.1);
        let step = tick_step(self.y.from.1, 5.0);
        let mut tick = 0.0;
        while tick <= self.y.from.1 * (1.0 + 1e-9) {
            let y = at(self.y.at(tick));
            let _ = write!(
                self.svg,
                r#"<line class="grid" x1="{}" x2="{}" y1="{y}" y2="{y}"/><text class="tick" x="{}" y="{y}" dy="4" text-anchor="end">{}</text>"#,
                at(x0),
                at(x1),
                at(x0 - 6.0),
                escape(&tick_label(tick)),
            );
            tick += step;
        }
        let step = tick_step(self.x.from.1, 10.0).max(1.0);
        let mut tick = 0.0;
        while tick <= self.x.from.1 * (1.0 + 1e-9) {
            let x = at(self.x.at(tick));
            let _ = write!(
                self.svg,
                r#"<line class="axis" x1="{x}" x2="{x}" y1="{}" y2="{}"/><text class="tick" x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                at(y0),
                at(y0 + 5.0),
                at(y0 + 18.0),
                escape(&tick_label(tick)),
            );
            tick += step;
        }
        let _ = write!(
            self.svg,
            r#"<line class="axis" x1="{a}" x2="{b}" y1="{c}" y2="{c}"/><line class="axis" x1="{a}" x2="{a}" y1="{c}" y2="{d}"/><text class="unit" x="{e}" y="{f}" text-anchor="middle">seconds since the load started</text><text class="unit" x="14" y="{g}" text-anchor="middle" transform="rotate(-90 14 {g})">{}</text>"#,
            escape(y_unit),
            a = at(x0),
            b = at(x1),
            c = at(y0),
            d = at(y1),
            e = at((x0 + x1) / 2.0),
            f = at(HEIGHT - 6.0),
            g = at((y0 + y1) / 2.0),
        );
    }

    /// A line through `(t, value)` points at each second's middle, broken where a value is
    /// missing or not finite; each point is also a dot carrying its figure.
    pub(super) fn line(&mut self, series: &str, color: &str, points: &[(u32, Option<f64>)]) {
        let series = escape(series);
        let color = escape(color);
        let mut segment: Vec<String> = Vec::new();
        let mut dots = String::new();
        let flush = |segment: &mut Vec<String>, svg: &mut String| {
            if segment.len() > 1 {
                let _ = write!(
                    svg,
                    r#"<polyline class="line" fill="none" stroke="{color}" points="{}"/>"#,
                    segment.join(" ")
                );
            }
            segment.clear();
        };
        for &(t, value) in points {
            let Some(value) = value.filter(|value| value.is_finite()) else {
                flush(&mut segment, &mut self.svg);
                continue;
            };
            let (x, y) = (at(self.x.at(f64::from(t) + 0.5)), at(self.y.at(value)));
            segment.push(format!("{x},{y}"));
            let _ = write!(
                dots,
                r#"<circle class="point" cx="{x}" cy="{y}" r="2" fill="{color}" data-series="{series}" data-t="{t}" data-value="{value}"><title>{series} at {t} s: {}</title></circle>"#,
                tick_label(value),
            );
        }
        flush(&mut segment, &mut self.svg);
        self.svg.push_str(&dots);
    }

    /// One bar per second, its parts `(series, color, count)` stacked from the bottom in order;
    /// parts of zero are not drawn.
    pub(super) fn stack(&mut self, t: u32, parts: &[(&str, &str, u64)]) {
        let (left, right) = (self.x.at(f64::from(t)), self.x.at(f64::from(t) + 1.0));
        let width = ((right - left) * 0.9).max(0.5);
        let mut below = 0u64;
        for &(series, color, count) in parts {
            if count == 0 {
                continue;
            }
            let top = below.saturating_add(count);
            #[allow(clippy::cast_precision_loss)] // counts far beyond 2^52 a second do not occur
            let (y_top, y_bottom) = (self.y.at(top as f64), self.y.at(below as f64));
            let _ = write!(
                self.svg,
                r#"<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}" data-series="{}" data-t="{t}" data-value="{count}"><title>{} at {t} s: {count}</title></rect>"#,
                at(left),
                at(y_top),
                at(width),
                at((y_bottom - y_top).max(0.0)),
                escape(color),
                escape(series),
                escape(series),
            );
            below = top;
        }
    }

    /// The proxy's events as vertical dashed lines, red for bad news, each with its tooltip.
    /// Events outside the x axis (before the load, after it) are left out.
    pub(super) fn markers(&mut self, events: &[ProxyEvent]) {
        for event in events {
            if !(event.t.is_finite() && (0.0..=self.x.from.1).contains(&event.t)) {
                continue;
            }
            let x = at(self.x.at(event.t));
            let class = if event.failure { "event bad" } else { "event" };
            let what = [event.kind.as_str(), &event.target, &event.detail]
                .iter()
                .filter(|part| !part.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            // A wide transparent line under the thin one: the tooltip is easy to hover.
            let _ = write!(
                self.svg,
                r#"<g class="{class}" data-t="{}" data-kind="{}"><title>{:.1} s: {}</title><line class="hit" x1="{x}" x2="{x}" y1="{y0}" y2="{y1}"/><line x1="{x}" x2="{x}" y1="{y0}" y2="{y1}"/></g>"#,
                event.t,
                escape(&event.kind),
                event.t,
                escape(&what),
                y0 = at(self.y.to.0),
                y1 = at(self.y.to.1),
            );
        }
    }

    /// The legend, in one row above the plot: `(name, color)`; the fault's band and the
    /// event markers are always explained.
    pub(super) fn legend(&mut self, entries: &[(&str, &str)]) {
        let mut x = WIDTH - RIGHT;
        let all = entries
            .iter()
            .map(|&(name, color)| (name, color, "swatch"))
            .chain([
                ("fault", "", "swatch fault"),
                ("proxy event", "", "swatch event-key"),
            ])
            .collect::<Vec<_>>();
        for (name, color, class) in all.into_iter().rev() {
            #[allow(clippy::cast_precision_loss)] // a legend's names are short
            let width = 7.0 * name.chars().count() as f64 + 22.0;
            x -= width;
            let fill = if color.is_empty() {
                String::new()
            } else {
                format!(r#" fill="{}""#, escape(color))
            };
            let _ = write!(
                self.svg,
                r#"<g class="legend"><rect class="{class}" x="{}" y="24" width="10" height="10"{fill}/><text x="{}" y="33">{}</text></g>"#,
                at(x),
                at(x + 14.0),
                escape(name),
            );
        }
    }

    /// The SVG text.
    pub(super) fn finish(mut self) -> String {
        self.svg.push_str("</svg>");
        self.svg
    }
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
