//! The node's logs: `tracing` events as text or JSON lines on stderr, written by a thread of
//! their own through a buffer.
//!
//! Why: the access log writes a line per request. Written on the request's thread to an
//! unbuffered stderr, each line was a `write` system call, and answering a sold-out purchase spent
//! a sixth of its CPU there. Lines now go through a channel to one writer thread, which writes
//! everything waiting in one call and flushes whenever the channel is empty, so a quiet node's
//! lines still appear at once.
//!
//! To ensure correctness:
//! - Nothing is dropped: a full channel makes the logging thread wait (`lossy(false)`), as the
//!   direct write did.
//! - Lines still buffered when the process ends are written first: every exit goes through
//!   [`flush`], which stops the writer thread after it has written what it holds.
//! - Colours only on a terminal: escape codes in a file or a journal are noise, and cost time.

use std::io::{BufWriter, IsTerminal};
use std::sync::Mutex;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// What `--log-format` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Lines waiting for the writer thread before a logging thread waits.
const QUEUED_LINES: usize = 64 * 1024;
/// The writer thread's buffer: the bytes it gathers into one `write`.
const WRITE_BUFFER: usize = 64 * 1024;

/// The writer thread's handle, kept until [`flush`] stops it.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default: info, openraft's warnings).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("orderq-logs")
        .finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()));
    if let Ok(mut kept) = WRITER.lock() {
        *kept = Some(guard);
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Writes every line logged so far and stops the writer thread; later lines are not written.
/// Called on every way out of the process.
pub fn flush() {
    let guard = match WRITER.lock() {
        Ok(mut kept) => kept.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    drop(guard);
}
