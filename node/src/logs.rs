//! The node's logs: `tracing` events as text or JSON lines on stderr, written in batches by a
//! thread of their own ([`crate::log_writer`]); access lines formatted by
//! [`crate::access_line`].
//!
//! Colours only on a terminal: escape codes in a file or a journal are noise, and cost time.

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::access_line::AccessLine;
use crate::log_writer::LogWriter;

/// What `--log-format` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The writer thread's handle, kept until [`flush`] stops it.
static WRITER: Mutex<Option<LogWriter>> = Mutex::new(None);

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default: info, openraft's warnings).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let ansi = std::io::stderr().is_terminal();
    let writer = LogWriter::start(std::io::stderr());
    if let Ok(mut kept) = WRITER.lock() {
        *kept = Some(writer.clone());
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => logs
            .event_format(AccessLine::text(tracing_subscriber::fmt::format()))
            .init(),
        LogFormat::Json => logs
            .json()
            .event_format(AccessLine::json(tracing_subscriber::fmt::format().json()))
            .init(),
    }
}

/// Writes every line logged so far and stops the writer thread; later lines go to stderr
/// directly.
/// Called on every way out of the process.
pub fn flush() {
    let writer = match WRITER.lock() {
        Ok(mut kept) => kept.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(writer) = writer {
        writer.stop();
    }
}
