//! [`LogWriter`]: where formatted log lines go. Logging threads append each line to one shared
//! buffer; a writer thread of its own takes the whole buffer at once and writes it to stderr.
//!
//! Why: the access log writes a line per request. Each line sent on its own through a channel
//! woke the writer thread and made it write and flush a few lines at a time: under a flash sale a
//! futex wake, a context switch and a `write` system call every few requests, a third of the CPU
//! of a sold-out answer. Here a logging thread wakes the writer only when it finds the buffer
//! empty, and the writer lets lines gather for [`LINGER`] before it writes them: at most one wake
//! and one `write` per [`LINGER`], however many lines.
//!
//! To ensure correctness:
//! - Nothing is dropped: a logging thread that finds [`MAX_PENDING`] bytes waiting waits for the
//!   writer to take them, as a full channel made it wait before.
//! - Lines keep their order: one buffer, appended under its lock, written in order.
//! - A quiet node's lines still appear promptly: within [`LINGER`] of being logged.
//! - Lines still buffered when the process ends are written first: every exit goes through
//!   [`LogWriter::stop`], which waits for the writer thread to write what it holds; a line logged
//!   after that is written to stderr directly.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer thread lets lines gather before it writes them.
pub const LINGER: Duration = Duration::from_millis(5);

/// Bytes waiting for the writer thread before a logging thread waits.
pub const MAX_PENDING: usize = 4 << 20;

/// What the logging threads and the writer thread share.
#[derive(Debug, Default)]
struct Pending {
    /// Lines not yet taken by the writer thread.
    lines: Vec<u8>,
    /// Set by [`LogWriter::stop`]: the writer thread writes what is left and ends.
    stopping: bool,
    /// Set once the writer thread has ended: later lines go to stderr directly.
    stopped: bool,
}

/// The buffer, and the two conditions threads wait on.
#[derive(Debug, Default)]
struct Shared {
    /// The lines waiting and the writer's state.
    pending: Mutex<Pending>,
    /// Signalled when lines arrive in an empty buffer, and on stop.
    arrived: Condvar,
    /// Signalled when the writer thread has taken the buffer.
    taken: Condvar,
}

impl Shared {
    /// The pending lines, even if a thread panicked holding them (they are plain bytes).
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The node's log sink: a [`tracing_subscriber::fmt::MakeWriter`] whose lines a thread of its
/// own writes to `out` (stderr in the node) in batches.
#[derive(Debug, Clone)]
pub struct LogWriter {
    /// The buffer shared with the writer thread.
    shared: Arc<Shared>,
    /// The writer thread, joined by [`LogWriter::stop`].
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl LogWriter {
    /// Starts the writer thread, writing to `out`. Should the thread not start, lines go to
    /// stderr directly, one `write` each, and the node says so.
    pub fn start(out: impl Write + Send + 'static) -> Self {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("orderq-logs".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, out)
            });
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                eprintln!("orderq: starting the log writer thread: {e}; logging directly");
                shared.lock().stopped = true;
                None
            }
        };
        LogWriter {
            shared,
            thread: Arc::new(Mutex::new(thread)),
        }
    }

    /// Appends one or more whole lines.
    fn append(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        while pending.lines.len() >= MAX_PENDING && !pending.stopped {
            self.shared.arrived.notify_one();
            pending = self
                .shared
                .taken
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if pending.stopped {
            drop(pending);
            let _ = std::io::stderr().write_all(line);
            return;
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        // Only the first line of a batch wakes the writer (a `notify` is a system call); it
        // lingers for the others.
        if was_empty {
            self.shared.arrived.notify_one();
        }
    }

    /// Writes every line logged so far and ends the writer thread; later lines are written to
    /// stderr directly. Called on every way out of the process.
    pub fn stop(&self) {
        self.shared.lock().stopping = true;
        self.shared.arrived.notify_one();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The writer thread: waits for lines, lets more gather for [`LINGER`], writes them all in one
/// go; on stop, writes what is left and ends.
fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && !pending.stopping {
            pending = shared
                .arrived
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if !pending.stopping && pending.lines.len() < MAX_PENDING {
            drop(pending);
            std::thread::sleep(LINGER);
            pending = shared.lock();
        }
        std::mem::swap(&mut batch, &mut pending.lines);
        let stopping = pending.stopping;
        if stopping {
            pending.stopped = true;
        }
        drop(pending);
        shared.taken.notify_all();
        // A log that cannot be written has nowhere to report that; the node goes on serving.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if stopping {
            return;
        }
    }
}

/// One event's handle on the [`LogWriter`]: tracing's fmt layer writes each event's line with
/// one `write_all`.
#[derive(Debug)]
pub struct LineHandle<'a>(&'a LogWriter);

impl Write for LineHandle<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineHandle<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineHandle(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into memory that the test can read, counting the writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut captured = self.0.lock().expect("lock");
            captured.0.extend_from_slice(buf);
            captured.1 += 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_in_few_writes_and_all_by_stop() {
        let out = Captured::default();
        let writer = LogWriter::start(out.clone());
        let lines = 10_000;
        for n in 0..lines {
            let mut handle = tracing_subscriber::fmt::MakeWriter::make_writer(&writer);
            handle
                .write_all(format!("line {n}\n").as_bytes())
                .expect("append");
        }
        writer.stop();
        let (text, writes) = {
            let captured = out.0.lock().expect("lock");
            (
                String::from_utf8(captured.0.clone()).expect("utf8"),
                captured.1,
            )
        };
        let expected: String = (0..lines).map(|n| format!("line {n}\n")).collect();
        assert_eq!(text, expected, "every line, in order, written by stop");
        assert!(
            writes < lines / 10,
            "lines are batched: {writes} writes for {lines} lines"
        );
    }

    #[test]
    fn a_quiet_line_is_written_without_a_stop() {
        let out = Captured::default();
        let writer = LogWriter::start(out.clone());
        writer.append(b"alone\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().expect("lock").0.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "a lone line reaches the output"
            );
            std::thread::yield_now();
        }
        assert_eq!(out.0.lock().expect("lock").0, b"alone\n");
        writer.stop();
    }
}
