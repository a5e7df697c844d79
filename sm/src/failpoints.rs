//! Crash points in the write path, for the chaos harness's crash tests.
//!
//! Each point is a [`fail`] failpoint. In a normal build they compile to nothing. In a build
//! with the `failpoints` feature they are armed by the `FAILPOINTS` environment variable the
//! node reads at start (`FAILPOINTS=log-before-sync=5%return`): when one fires with `return`,
//! the process aborts on the spot, as a power cut would stop it there, and the harness restarts
//! it from its data. What must hold: nothing acknowledged is lost, and the state after restart is
//! the state of some prefix of the log.
//!
//! One point is a mutant instead of a crash: [`LOG_SKIP_SYNC`] (`FAILPOINTS=log-skip-sync=return`)
//! makes the log acknowledge appends without syncing them, which no `kill -9` can tell apart from
//! the real thing but a power cut can. The chaos harness arms it to prove its power-loss faults
//! and its durability checker catch a write path that is not durable before it acknowledges.
//! [`APPLY_CLOCK_SKEW`] is the second mutant: `apply` decides with the entry's raw stamp moved
//! by a skew, ignoring the batch clock, which the harness's `timers` checker must catch.

/// After the log entries are written to RocksDB (unsynced) and before the WAL is synced: the
/// entries may vanish; none was acknowledged.
pub const LOG_BEFORE_SYNC: &str = "log-before-sync";

/// After the WAL sync and before openraft hears of it: the entries are durable but were never
/// acknowledged to the leader.
pub const LOG_AFTER_SYNC: &str = "log-after-sync";

/// In the middle of applying a batch: every command of it has been decided, nothing written.
pub const APPLY_BEFORE_WRITE: &str = "apply-before-write";

/// After the applied batch is written, before the node hears of it (no client was answered).
pub const APPLY_AFTER_WRITE: &str = "apply-after-write";

/// Not a crash point: when armed (with `return`), the log acknowledges appends without syncing
/// the WAL. A deliberately broken build, for the harness to prove it notices.
pub const LOG_SKIP_SYNC: &str = "log-skip-sync";

/// Not a crash point: when armed with `return(MS)`, `apply` runs each entry at its raw stamp
/// plus MS milliseconds, ignoring the batch clock. A deliberately broken build, for the timers
/// checker to prove it notices deadlines decided with a wrong clock.
pub const APPLY_CLOCK_SKEW: &str = "apply-clock-skew";

/// Every crash point.
pub const ALL: &[&str] = &[
    LOG_BEFORE_SYNC,
    LOG_AFTER_SYNC,
    APPLY_BEFORE_WRITE,
    APPLY_AFTER_WRITE,
];

/// Aborts the process here if the failpoint `name` is armed and fires (with the `return`
/// action); does nothing otherwise, and nothing at all without the `failpoints` feature.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
#[inline]
pub fn crash_point(name: &str) {
    fail::fail_point!(name, |_| {
        eprintln!("orderq: failpoint {name} fired: aborting");
        std::process::abort()
    });
}

/// Whether the failpoint `name` is armed and fires (with the `return` action): the caller then
/// skips the step the point guards. Always `false` without the `failpoints` feature.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
#[inline]
pub fn skip_point(name: &str) -> bool {
    fail::fail_point!(name, |_| true);
    false
}

/// The value the failpoint `name` fires with (`return(VALUE)`), if it is armed and fires; always
/// `None` without the `failpoints` feature.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
#[inline]
pub fn value_point(name: &str) -> Option<String> {
    fail::fail_point!(name, |value| Some(value.unwrap_or_default()));
    None
}
