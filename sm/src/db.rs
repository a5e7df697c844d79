//! Opening the node's RocksDB with every column family of [`crate::keys`].

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, FlushOptions, Options,
    WriteOptions, DB,
};

use crate::error::StoreError;
use crate::keys::ALL_CFS;

/// Memory all memtables of all column families may use together before the largest is flushed.
const MEMTABLE_BUDGET: usize = 64 << 20;
/// One block cache shared by every column family.
const BLOCK_CACHE: usize = 32 << 20;

/// Opens (creating if needed) the database at `path` with all column families.
///
/// Memory is bounded by design, not by the defaults (64 MiB of memtables per column family):
/// memtables share [`MEMTABLE_BUDGET`] and reads share one [`BLOCK_CACHE`], so millions of
/// orders and timers live on disk and the node's resident memory stays small.
///
/// SST files are LZ4-compressed: records are JSON, an order's data is repeated in its change
/// records, event and stored answer, and RocksDB's default (Snappy) is not compiled in, so
/// files were written raw. LZ4 keeps an order in 583 bytes of SST instead of 2,557 at no more
/// CPU per order (`order_footprint` example). Files written before stay readable: each SST
/// names its own compression.
pub fn open(path: &Path) -> Result<Arc<DB>, StoreError> {
    let (opts, cfs) = options();
    Ok(Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?))
}

/// Opens the database at `path` (a backup's checkpoint) for reading only: nothing is written
/// to its directory, and a missing database is an error.
pub fn open_read_only(path: &Path) -> Result<Arc<DB>, StoreError> {
    let (mut opts, cfs) = options();
    opts.create_if_missing(false);
    Ok(Arc::new(DB::open_cf_descriptors_read_only(
        &opts, path, cfs, false,
    )?))
}

/// The options [`open`] uses, and the descriptor of every column family.
fn options() -> (Options, Vec<ColumnFamilyDescriptor>) {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    // `apply` writes the state without the WAL ([`unlogged`]): every flush writes all column
    // families together, so what survives a crash is the state (and its `last_applied`) of one
    // moment, never one family ahead of another.
    opts.set_atomic_flush(true);
    let cache = Cache::new_lru_cache(BLOCK_CACHE);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    let cfs = ALL_CFS
        .iter()
        .map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table);
            cf_opts.set_write_buffer_size(MEMTABLE_BUDGET / 4);
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        })
        .collect();
    (opts, cfs)
}

/// How `apply` writes the state: without RocksDB's write-ahead log.
///
/// Why: the Raft log is the state's write-ahead log already. Every applied entry is in it,
/// synced before it was acknowledged, and `apply` is deterministic, so the state only has to be
/// durable as of some entry, which `last_applied` names; a restart replays the log from there.
/// Logging the state a second time made the WAL about eight times the log (2.5 KB per order
/// against 300 bytes), and its `write` took 8% of a follower's CPU samples under load; side by
/// side with etcd, a follower's CPU per order went from 62-64 us to 57-62 us without it. What
/// keeps this correct:
/// - flushes are atomic across column families (see [`open`]), so the state on disk is always
///   one `last_applied`'s, and the Raft log's memtable goes down with it, so the log on disk
///   always reaches the state on disk;
/// - the log is purged only behind the state on disk ([`flush_all`] before every purge), so the
///   entries a restart replays are still there;
/// - a snapshot install and everything written outside `apply` keep the WAL and its sync.
pub fn unlogged() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.disable_wal(true);
    opts
}

/// Writes every column family's memtable to disk, atomically, and waits: the state on disk is
/// then everything applied so far (see [`unlogged`]).
pub fn flush_all(db: &DB) -> Result<(), StoreError> {
    let handles = ALL_CFS
        .iter()
        .map(|name| cf(db, name))
        .collect::<Result<Vec<_>, _>>()?;
    let mut wait = FlushOptions::default();
    wait.set_wait(true);
    db.flush_cfs_opt(&handles, &wait)?;
    Ok(())
}

/// The handle of column family `name`; every CF is created by [`open`], so a missing one means
/// the database was opened by something else.
pub fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::corrupt("column family", format!("{name} missing")))
}

/// RocksDB's own size estimates over every column family, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSizes {
    /// `rocksdb.estimate-live-data-size`, summed: bytes of data that is not yet obsolete.
    pub live_data_bytes: u64,
    /// `rocksdb.estimate-pending-compaction-bytes`, summed: bytes compaction must rewrite to
    /// bring every level under its target (a rising value means writes outrun compaction).
    pub pending_compaction_bytes: u64,
}

/// Reads [`DbSizes`] from `db`'s properties.
pub fn sizes(db: &DB) -> Result<DbSizes, StoreError> {
    let mut sizes = DbSizes::default();
    for name in ALL_CFS {
        let handle = cf(db, name)?;
        let property = |p: &str| db.property_int_value_cf(handle, p).map(|v| v.unwrap_or(0));
        sizes.live_data_bytes += property("rocksdb.estimate-live-data-size")?;
        sizes.pending_compaction_bytes += property("rocksdb.estimate-pending-compaction-bytes")?;
    }
    Ok(sizes)
}
