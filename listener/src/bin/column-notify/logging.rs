//! `-v` and `RUST_LOG`: the crate's tracing events (connections, reconnections, replays) on
//! stderr, beside the state lines.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber: `RUST_LOG` when set, else `-v` (info), `-vv` (debug), `-vvv`
/// (trace) for the listener crate; nothing without either.
pub fn init(verbose: u8) {
    let directives = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => directives,
        _ => match verbose {
            0 => return,
            1 => "column_notify_listener=info".to_owned(),
            2 => "column_notify_listener=debug".to_owned(),
            _ => "column_notify_listener=trace".to_owned(),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(directives))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
