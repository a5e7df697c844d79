//! [`AccessLine`]: the access log's lines (target `access`, one per request, see
//! `api::access_log`), written straight into the line buffer in the same text and JSON shapes as
//! tracing-subscriber's formatters, every other event left to them.
//!
//! Why: a sold-out answer costs a few microseconds, and tracing-subscriber's formatters spent
//! about a tenth of that on its access line: each field through `Debug`, the timestamp's date
//! computed anew for every line, a JSON line built through serde's map serializer. Here numbers
//! go through `itoa`/`ryu`, strings that need no escaping are copied as they are, and each thread
//! keeps the current second's date.
//!
//! To ensure correctness:
//! - A line reads as tracing-subscriber would write it (timestamp, level, target, the message
//!   and fields in their order; strings quoted, and escaped as `Debug` or JSON would, numbers
//!   bare), so log readers and parsers see one format.
//! - Anything this does not know how to write the same way (colours on a terminal, an event inside
//!   a span) goes to the wrapped formatter.

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the access log's events.
const ACCESS_TARGET: &str = "access";

/// The two line shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `2026-01-02T03:04:05.678901Z  INFO access: request method="GET" status=200`
    Text,
    /// `{"timestamp":"…","level":"INFO","fields":{"message":"request",…},"target":"access"}`
    Json,
}

/// An event formatter that writes access lines itself and hands every other event to `other`.
#[derive(Debug, Clone)]
pub struct AccessLine<F> {
    /// The formatter of every other event (tracing-subscriber's, of the same shape).
    other: F,
    /// Which shape `other` writes, and so which this writes.
    shape: Shape,
}

impl<F> AccessLine<F> {
    /// Access lines as text, beside `other`, tracing-subscriber's text formatter.
    pub fn text(other: F) -> Self {
        AccessLine {
            other,
            shape: Shape::Text,
        }
    }

    /// Access lines as JSON objects, beside `other`, tracing-subscriber's JSON formatter.
    pub fn json(other: F) -> Self {
        AccessLine {
            other,
            shape: Shape::Json,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for AccessLine<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != ACCESS_TARGET
            || writer.has_ansi_escapes()
            || ctx.parent_span().is_some()
        {
            return self.other.format_event(ctx, writer, event);
        }
        match self.shape {
            Shape::Text => {
                write_timestamp(&mut writer)?;
                writer.write_str(match *meta.level() {
                    Level::ERROR => " ERROR ",
                    Level::WARN => "  WARN ",
                    Level::INFO => "  INFO ",
                    Level::DEBUG => " DEBUG ",
                    Level::TRACE => " TRACE ",
                })?;
                writer.write_str(ACCESS_TARGET)?;
                writer.write_str(":")?;
            }
            Shape::Json => {
                writer.write_str("{\"timestamp\":\"")?;
                write_timestamp(&mut writer)?;
                writer.write_str("\",\"level\":\"")?;
                writer.write_str(meta.level().as_str())?;
                writer.write_str("\",\"fields\":{")?;
            }
        }
        let mut fields = Fields {
            out: &mut writer,
            shape: self.shape,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        if self.shape == Shape::Json {
            writer.write_str("},\"target\":\"")?;
            writer.write_str(ACCESS_TARGET)?;
            writer.write_str("\"}")?;
        }
        writer.write_char('\n')
    }
}

/// Writes an event's fields as they are visited: in text `message name=value …`, in JSON
/// `"name":value,…`.
struct Fields<'w, 'a> {
    /// The line.
    out: &'w mut Writer<'a>,
    /// Text or JSON.
    shape: Shape,
    /// No field written yet (JSON puts no comma before the first).
    first: bool,
    /// The first write that failed, if any (a visitor cannot return it).
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Writes the separator and `name` of the next field: text writes a bare message with no
    /// name, as tracing's text formatter does.
    fn name(&mut self, field: &Field) -> fmt::Result {
        let first = std::mem::replace(&mut self.first, false);
        match self.shape {
            Shape::Text => {
                self.out.write_char(' ')?;
                if field.name() != "message" {
                    self.out.write_str(field.name())?;
                    self.out.write_char('=')?;
                }
            }
            Shape::Json => {
                if !first {
                    self.out.write_char(',')?;
                }
                self.out.write_char('"')?;
                self.out.write_str(field.name())?;
                self.out.write_str("\":")?;
            }
        }
        Ok(())
    }

    /// Writes one field, keeping the first error.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Self) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| value(self));
        }
    }

    /// A string: quoted, escaped as `Debug` (text) or JSON would; copied as it is when nothing
    /// needs escaping (methods, route templates, request ids).
    fn string(&mut self, value: &str) -> fmt::Result {
        let plain = value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if plain {
            self.out.write_char('"')?;
            self.out.write_str(value)?;
            return self.out.write_char('"');
        }
        match self.shape {
            Shape::Text => write!(self.out, "{value:?}"),
            Shape::Json => {
                let quoted = serde_json::to_string(value).map_err(|_| fmt::Error)?;
                self.out.write_str(&quoted)
            }
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |this| {
            if this.shape == Shape::Text && field.name() == "message" {
                return this.out.write_str(value);
            }
            this.string(value)
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |this| {
            this.out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |this| {
            this.out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |this| {
            if value.is_finite() {
                this.out.write_str(ryu::Buffer::new().format_finite(value))
            } else if this.shape == Shape::Json {
                this.out.write_str("null")
            } else {
                write!(this.out, "{value:?}")
            }
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |this| {
            this.out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |this| match this.shape {
            // A message, or a value logged with `%` (its Display) or `?`: written bare, as
            // tracing's text formatter does.
            Shape::Text => write!(this.out, "{value:?}"),
            Shape::Json => this.string(&format!("{value:?}")),
        });
    }
}

/// Writes the current time as tracing-subscriber's default timer does:
/// `2026-01-02T03:04:05.678901Z` (UTC, microseconds).
fn write_timestamp(out: &mut Writer<'_>) -> fmt::Result {
    thread_local! {
        /// The second this thread last wrote, and its `2026-01-02T03:04:05`.
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let mut second = SECOND.get();
    if second.0 != secs {
        second = (secs, date_time(secs));
        SECOND.set(second);
    }
    out.write_str(std::str::from_utf8(&second.1).map_err(|_| fmt::Error)?)?;
    let micros = now.subsec_micros();
    let mut fraction = *b".000000Z";
    let mut rest = micros;
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` after the Unix epoch, in UTC.
fn date_time(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3600);
    put(14, 2, in_day / 60 % 60);
    put(17, 2, in_day % 60);
    text
}

/// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    /// Lines written in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Lines {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().expect("lock"))).expect("utf8")
        }
    }

    /// Logs the same events through tracing-subscriber's formatter and through [`AccessLine`].
    fn both(shape: Shape, log: impl Fn()) -> (String, String) {
        let theirs = Lines::default();
        let ours = Lines::default();
        let builder = || tracing_subscriber::fmt().with_ansi(false);
        match shape {
            Shape::Text => {
                let sub = builder().with_writer(theirs.clone()).finish();
                tracing::subscriber::with_default(sub, &log);
                let sub = builder()
                    .with_writer(ours.clone())
                    .event_format(AccessLine::text(tracing_subscriber::fmt::format()))
                    .finish();
                tracing::subscriber::with_default(sub, &log);
            }
            Shape::Json => {
                let sub = builder().json().with_writer(theirs.clone()).finish();
                tracing::subscriber::with_default(sub, &log);
                let sub = builder()
                    .json()
                    .with_writer(ours.clone())
                    .event_format(AccessLine::json(tracing_subscriber::fmt::format().json()))
                    .finish();
                tracing::subscriber::with_default(sub, &log);
            }
        }
        (theirs.take(), ours.take())
    }

    /// A line without its timestamp (the two formatters ran at different instants).
    fn untimed(line: &str, shape: Shape) -> String {
        match shape {
            Shape::Text => line[line.find('Z').expect("timestamp") + 1..].to_string(),
            Shape::Json => {
                let mut value: serde_json::Value = serde_json::from_str(line).expect("json");
                let stamp = value["timestamp"].as_str().expect("timestamp").to_string();
                assert_eq!(stamp.len(), 27, "{stamp}");
                assert!(time::OffsetDateTime::parse(
                    &stamp,
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok());
                value["timestamp"] = serde_json::Value::Null;
                value.to_string()
            }
        }
    }

    fn events() {
        let cause = "no_leader: \"quoted\"\ttab";
        tracing::info!(target: "access", method = "GET", route = "/v1/orders/{id}", status = 404_u16, duration_ms = 0.203_f64, request_id = "t37-req-1", "request");
        tracing::warn!(target: "access", method = "POST", route = "/v1/seckill/{sku}", status = 503_u16, duration_ms = 12.5_f64, request_id = "ab\"c", %cause, "request unavailable");
        tracing::error!(target: "access", method = "PUT", route = "/x", status = 500_u16, duration_ms = 1e-7_f64, request_id = "é", cause = "disk", ok = true, n = -3_i64, "request failed");
        tracing::info!(target: "node::other", n = 1, "not an access line");
    }

    #[test]
    fn access_lines_read_as_tracing_subscriber_writes_them() {
        for shape in [Shape::Text, Shape::Json] {
            let (theirs, ours) = both(shape, events);
            let theirs: Vec<String> = theirs.lines().map(|l| untimed(l, shape)).collect();
            let ours: Vec<String> = ours.lines().map(|l| untimed(l, shape)).collect();
            assert_eq!(ours.len(), 4, "{ours:?}");
            for (mine, reference) in ours.iter().zip(&theirs) {
                // ryu writes 1e-7 as tracing's Debug does; both are numbers either way.
                assert_eq!(mine, reference, "{shape:?}");
            }
        }
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(&date_time(0), b"1970-01-01T00:00:00");
        assert_eq!(&date_time(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&date_time(1_798_761_599), b"2026-12-31T23:59:59");
        assert_eq!(&date_time(4_107_542_400), b"2100-03-01T00:00:00");
    }
}
