//! Opening the node's RocksDB with every column family of [`crate::keys`].

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

use crate::error::StoreError;
use crate::keys::ALL_CFS;

/// Opens (creating if needed) the database at `path` with all column families.
pub fn open(path: &Path) -> Result<Arc<DB>, StoreError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    let cfs = ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?))
}

/// The handle of column family `name`; every CF is created by [`open`], so a missing one means
/// the database was opened by something else.
pub fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::corrupt("column family", format!("{name} missing")))
}
