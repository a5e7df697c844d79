//! A read-your-writes view over the database for the length of one applied batch.
//!
//! `apply` reads through the [`Txn`] (its own pending writes first, then RocksDB) and writes into
//! it; the whole batch then goes to disk as one `WriteBatch`, so a crash leaves either all of a
//! batch's effects or none.

use std::collections::HashMap;

use rocksdb::{WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StoreError;

/// Pending writes of one applied batch over a database.
pub struct Txn<'a> {
    /// Where unchanged keys are read from.
    db: &'a DB,
    /// Writes so far: `Some(value)` to put, `None` to delete.
    writes: HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    /// An empty transaction over `db`.
    pub fn new(db: &'a DB) -> Self {
        Txn {
            db,
            writes: HashMap::new(),
        }
    }

    /// The raw value of `key` in `cf` as this transaction sees it.
    pub fn get_raw(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.writes.get(&(cf, key.to_vec())) {
            return Ok(pending.clone());
        }
        Ok(self.db.get_cf(crate::db::cf(self.db, cf)?, key)?)
    }

    /// The JSON value of `key` in `cf`, decoded.
    pub fn get<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::corrupt(cf, e)),
        }
    }

    /// Stages a raw put.
    pub fn put_raw(&mut self, cf: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert((cf, key), Some(value));
    }

    /// Stages a JSON put.
    pub fn put<T: Serialize>(
        &mut self,
        cf: &'static str,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::corrupt(cf, e))?;
        self.put_raw(cf, key, bytes);
        Ok(())
    }

    /// Stages a delete.
    pub fn delete(&mut self, cf: &'static str, key: Vec<u8>) {
        self.writes.insert((cf, key), None);
    }

    /// The values staged to be put in `cf`: what a batch changed there, for the in-memory views
    /// updated once the batch is written (the sold-out set).
    pub fn staged_puts(&self, cf: &'static str) -> impl Iterator<Item = &[u8]> + '_ {
        self.writes
            .iter()
            .filter(move |((name, _), _)| *name == cf)
            .filter_map(|(_, value)| value.as_deref())
    }

    /// The staged writes as one RocksDB batch.
    pub fn into_write_batch(self) -> Result<WriteBatch, StoreError> {
        let mut batch = WriteBatch::default();
        for ((cf, key), value) in self.writes {
            let handle = crate::db::cf(self.db, cf)?;
            match value {
                Some(value) => batch.put_cf(handle, key, value),
                None => batch.delete_cf(handle, key),
            }
        }
        Ok(batch)
    }
}
