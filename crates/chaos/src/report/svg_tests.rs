//! The SVG parts alone: scales, ticks, lines, stacks, markers and the fault's band.

use super::*;

#[test]
fn a_scale_maps_its_domain_onto_its_range_and_clamps_outside_it() {
    let scale = Scale::new((0.0, 10.0), (100.0, 200.0));
    assert_eq!(scale.at(0.0), 100.0);
    assert_eq!(scale.at(5.0), 150.0);
    assert_eq!(scale.at(10.0), 200.0);
    assert_eq!(scale.at(-3.0), 100.0);
    assert_eq!(scale.at(1e300), 200.0);
}

#[test]
fn a_scale_never_yields_nan_or_infinity() {
    let empty = Scale::new((0.0, 0.0), (0.0, 100.0));
    let wild = Scale::new((f64::NAN, f64::INFINITY), (0.0, 100.0));
    for scale in [empty, wild] {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, 1e308] {
            assert!(scale.at(value).is_finite(), "{scale:?} at {value}");
        }
    }
}

#[test]
fn an_inverted_range_puts_zero_at_the_bottom() {
    let scale = Scale::new((0.0, 100.0), (236.0, 40.0));
    assert_eq!(scale.at(0.0), 236.0);
    assert_eq!(scale.at(100.0), 40.0);
}

#[test]
fn ticks_step_by_one_two_or_five_times_a_power_of_ten() {
    assert_eq!(tick_step(100.0, 5.0), 20.0);
    assert_eq!(tick_step(7.0, 5.0), 2.0);
    assert_eq!(tick_step(0.3, 5.0), 0.1);
    assert_eq!(tick_step(1e12, 5.0), 2e11);
    assert_eq!(tick_step(f64::INFINITY, 5.0), 1.0);
}

#[test]
fn an_axis_top_is_a_tick_at_or_above_the_largest_figure() {
    assert_eq!(nice_max(87.0, 1.0), 100.0);
    assert_eq!(nice_max(0.0, 1.0), 1.0);
    assert_eq!(nice_max(f64::NAN, 1.0), 1.0);
    assert_eq!(nice_max(f64::INFINITY, 1.0), 1.0);
    assert_eq!(nice_max(1e300, 1.0), CEILING);
}

#[test]
fn tick_labels_are_short() {
    assert_eq!(tick_label(40.0), "40");
    assert_eq!(tick_label(0.25), "0.25");
    assert_eq!(tick_label(0.5), "0.5");
    assert_eq!(tick_label(2e11), "2.0e11");
}

fn frame() -> Frame<'static> {
    Frame {
        experiment: "x",
        kind: "latency",
        title: "t",
        seconds: 10.0,
        y_max: 100.0,
        y_unit: "ms",
    }
}

#[test]
fn a_line_breaks_where_figures_are_missing_and_writes_no_nan() {
    let mut plot = Plot::new(&frame(), None);
    let points = [
        (0, Some(1.0)),
        (1, Some(2.0)),
        (2, None),
        (3, Some(f64::NAN)),
        (4, Some(3.0)),
        (5, Some(4.0)),
    ];
    plot.line("p50", "#000", &points);
    let svg = plot.finish();
    assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
    assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
}

#[test]
fn a_single_point_is_a_dot_without_a_line() {
    let mut plot = Plot::new(&frame(), None);
    plot.line("p50", "#000", &[(0, Some(5.0))]);
    let svg = plot.finish();
    assert_eq!(svg.matches("<polyline").count(), 0);
    assert!(svg.contains(r#"data-t="0" data-value="5""#), "{svg}");
}

#[test]
fn stacked_parts_sit_on_each_other_and_zero_parts_are_left_out() {
    let mut plot = Plot::new(&frame(), None);
    plot.stack(2, &[("a", "#111", 50), ("b", "#222", 0), ("c", "#333", 50)]);
    let svg = plot.finish();
    assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
    // 0..50 then 50..100 of a 0..100 axis drawn from y 236 up to y 40.
    assert!(svg.contains(r#"y="138.0" width="#), "{svg}");
    assert!(svg.contains(r#"y="40.0" width="#), "{svg}");
}

#[test]
fn events_outside_the_load_are_not_drawn() {
    let mut plot = Plot::new(&frame(), None);
    let event = |t| ProxyEvent {
        t,
        kind: "breaker_opened".into(),
        target: "api".into(),
        detail: String::new(),
        failure: true,
    };
    plot.markers(&[event(-1.0), event(3.0), event(11.0), event(f64::NAN)]);
    let svg = plot.finish();
    assert_eq!(svg.matches(r#"data-kind="breaker_opened""#).count(), 1);
}

#[test]
fn the_fault_band_carries_its_window() {
    let window = FaultWindow {
        start_s: 2.0,
        end_s: 6.5,
    };
    let svg = Plot::new(&frame(), Some(window)).finish();
    assert!(svg.contains(r#"data-start="2" data-end="6.5""#), "{svg}");
}
