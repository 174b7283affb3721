//! Logging for the functions and tools: JSON, one object per line, level from `RUST_LOG`
//! (default `info`). No e-mail or address is ever logged; ids are.

/// Installs the JSON log subscriber (once per process; later calls do nothing).
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}
