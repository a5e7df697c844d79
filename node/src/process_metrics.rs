//! The standard process families every Prometheus client exports (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`), read from `/proc` at scrape time, so
//! dashboards and alerts written for any exporter work on orderq too. Off Linux, none is written.

use std::fmt;

use api::metrics::{counter, gauge};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// The collector of this process's numbers.
#[derive(Debug, Default)]
pub struct ProcessMetrics;

/// What one scrape reads from `/proc`.
struct Sample {
    /// User plus system CPU time, in seconds.
    cpu_seconds: f64,
    /// Resident set size in bytes.
    resident_bytes: i64,
    /// Virtual memory size in bytes.
    virtual_bytes: i64,
    /// When the process started, in seconds since the epoch.
    start_time_seconds: f64,
    /// Open file descriptors.
    open_fds: i64,
    /// The soft limit on open file descriptors.
    max_fds: i64,
}

/// A `sysconf` value, or `fallback` when the system does not say.
fn sysconf(name: libc::c_int, fallback: i64) -> i64 {
    // SAFETY: sysconf reads a system constant and has no memory effects.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 {
        value
    } else {
        fallback
    }
}

/// Reads `/proc/self/stat`, `/proc/stat` (boot time), `/proc/self/fd` and the fd limit.
fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it start at field 3.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let ticks = sysconf(libc::_SC_CLK_TCK, 100) as f64;
    let page = sysconf(libc::_SC_PAGESIZE, 4096);
    let boot_time: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `limit`, which lives for the call.
    let max_fds = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX),
        _ => 0,
    };
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        virtual_bytes: field(23)? as i64,
        resident_bytes: field(24)? as i64 * page,
        start_time_seconds: boot_time + field(22)? / ticks,
        open_fds,
        max_fds,
    })
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(s) = sample() else {
            return Ok(());
        };
        let e = &mut encoder;
        counter(
            e,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            s.cpu_seconds,
        )?;
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            s.resident_bytes,
        )?;
        gauge(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            s.virtual_bytes,
        )?;
        gauge(
            e,
            "process_open_fds",
            "Number of open file descriptors.",
            s.open_fds,
        )?;
        gauge(
            e,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            s.max_fds,
        )?;
        gauge(
            e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            s.start_time_seconds,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_started_in_the_past_with_memory_and_open_files() {
        let s = sample().expect("/proc is readable");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs_f64();
        assert!(s.start_time_seconds > now - 86_400.0 * 365.0 && s.start_time_seconds <= now + 1.0);
        assert!(s.resident_bytes > 0 && s.virtual_bytes >= s.resident_bytes);
        assert!(s.open_fds > 0 && s.open_fds <= s.max_fds);
        assert!(s.cpu_seconds >= 0.0);
    }
}
