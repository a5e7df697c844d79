//! Opening the node's RocksDB with every column family of [`crate::keys`].

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, DB};

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
