//! Prometheus metrics (stub until the metrics branch lands: it owns this module).

use crate::reload::Runtime;

/// The metrics in Prometheus text format (empty in this stub).
pub fn render(_: &Runtime) -> String {
    String::new()
}
