//! Logs, access logs and tracing (stub until the telemetry branch lands: it owns this module).

/// Sets the proxy's log filter at run time (not available in this stub).
pub fn set_log_filter(_: &str) -> Result<(), String> {
    Err("not available".into())
}
