//! Gauges of this node's disk use, read at scrape time: RocksDB's live data and pending
//! compaction estimates, and the free and total bytes of the filesystem holding the data
//! directory (a full disk stops the log, and with it the node).

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use api::metrics::gauge;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use sm::StateReader;

/// The collector of the data directory's numbers.
pub struct StorageMetrics {
    /// This node's state, whose database is measured.
    pub reader: StateReader,
    /// The data directory.
    pub data_dir: PathBuf,
}

impl fmt::Debug for StorageMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageMetrics")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Free bytes (for an unprivileged writer) and total bytes of the filesystem holding `path`.
fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value for statvfs to overwrite.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string and `stat` lives for the call.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let unit = stat.f_frsize as u64;
    Some((stat.f_bavail as u64 * unit, stat.f_blocks as u64 * unit))
}

/// Bytes as a gauge value.
fn bytes(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for StorageMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let e = &mut encoder;
        match sm::db::sizes(self.reader.db()) {
            Ok(sizes) => {
                gauge(
                    e,
                    "rocksdb_live_data_bytes",
                    "RocksDB's estimate of live (not obsolete) data, all column families.",
                    bytes(sizes.live_data_bytes),
                )?;
                gauge(
                    e,
                    "rocksdb_pending_compaction_bytes",
                    "RocksDB's estimate of bytes compaction must rewrite; rising: writes outrun compaction.",
                    bytes(sizes.pending_compaction_bytes),
                )?;
            }
            Err(e) => tracing::warn!(error = %e, "/metrics could not read RocksDB's properties"),
        }
        if let Some((free, total)) = disk_space(&self.data_dir) {
            gauge(
                e,
                "data_dir_free_bytes",
                "Bytes free to the node on the filesystem of its data directory.",
                bytes(free),
            )?;
            gauge(
                e,
                "data_dir_size_bytes",
                "Total bytes of the filesystem of the data directory.",
                bytes(total),
            )?;
        }
        Ok(())
    }
}
