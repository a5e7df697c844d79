//! Snapshots: a point-in-time copy of the state column families.
//!
//! To ensure correctness:
//! - A snapshot is read from one RocksDB snapshot, and its `last_log_id` and membership are read
//!   from that same RocksDB snapshot, so the data is exactly the state after `last_log_id`, never
//!   newer (the pitfall of openraft's example store).
//! - Installing one replaces every state column family in one synced `WriteBatch`, which also
//!   empties the node-local change stream and moves its floor to the snapshot's last entry.
//! - The current snapshot is kept in a file written to a temporary name, synced, then renamed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};

use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{KEY_END, SM_LAST_APPLIED, SM_MEMBERSHIP, STATE_CFS};
use crate::raft_types::{LogId, SnapshotMeta, StoredMembership};

/// Reads the state column families from a RocksDB snapshot and encodes them as
/// `(cf tag u8, key len u32, key, value len u32, value)*`, with the log id and membership they
/// are the state of.
pub fn capture(db: &DB) -> Result<(Option<LogId>, StoredMembership, Vec<u8>), StoreError> {
    let view = db.snapshot();
    let meta_cf = cf(db, crate::keys::CF_SM_META)?;
    let last_applied: Option<LogId> = match view.get_cf(meta_cf, SM_LAST_APPLIED)? {
        None => None,
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt("last applied", e))?
        }
    };
    let membership: StoredMembership = match view.get_cf(meta_cf, SM_MEMBERSHIP)? {
        None => StoredMembership::default(),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt("membership", e))?
        }
    };
    let mut data = Vec::new();
    for (tag, name) in STATE_CFS.iter().enumerate() {
        for item in view.iterator_cf(cf(db, name)?, IteratorMode::Start) {
            let (key, value) = item?;
            data.push(tag as u8);
            put_bytes(&mut data, &key)?;
            put_bytes(&mut data, &value)?;
        }
    }
    Ok((last_applied, membership, data))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| StoreError::corrupt("snapshot", "record over 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn take_bytes<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    let short = || StoreError::corrupt("snapshot", "truncated record");
    let (len, rest) = data.split_first_chunk::<4>().ok_or_else(short)?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(short());
    }
    let (bytes, rest) = rest.split_at(len);
    *data = rest;
    Ok(bytes)
}

/// Replaces the whole state with the snapshot `data` (as [`capture`] wrote it), the state after
/// the entry at `last_index`, atomically and durably. The same batch forgets this node's change
/// records, which the snapshot does not carry: the stream resumes after `last_index`.
pub fn restore(db: &DB, mut data: &[u8], last_index: Option<u64>) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    for name in STATE_CFS {
        batch.delete_range_cf(cf(db, name)?, [].as_slice(), KEY_END);
    }
    while let Some((&tag, rest)) = data.split_first() {
        data = rest;
        let name = STATE_CFS.get(tag as usize).ok_or_else(|| {
            StoreError::corrupt("snapshot", format!("unknown column family tag {tag}"))
        })?;
        let key = take_bytes(&mut data)?;
        let value = take_bytes(&mut data)?;
        batch.put_cf(cf(db, name)?, key, value);
    }
    crate::changes::reset_after_snapshot(db, &mut batch, last_index)?;
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    Ok(())
}

/// The file that holds the current snapshot beside the database.
pub struct SnapshotFile {
    /// `<data_dir>/snapshot/current`.
    path: PathBuf,
}

impl SnapshotFile {
    /// The snapshot file under `dir` (created if needed).
    pub fn new(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir)?;
        Ok(SnapshotFile {
            path: dir.join("current"),
        })
    }

    /// Saves `meta` and `data` as the current snapshot.
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let meta = serde_json::to_vec(meta).map_err(|e| StoreError::corrupt("snapshot meta", e))?;
        let tmp = self.path.with_extension("tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&(meta.len() as u64).to_be_bytes())?;
        file.write_all(&meta)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The current snapshot, if one was saved.
    pub fn load(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let corrupt = || StoreError::corrupt("snapshot file", "truncated");
        let (len, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let len = usize::try_from(u64::from_be_bytes(*len)).map_err(|_| corrupt())?;
        if rest.len() < len {
            return Err(corrupt());
        }
        let (meta, data) = rest.split_at(len);
        let meta =
            serde_json::from_slice(meta).map_err(|e| StoreError::corrupt("snapshot meta", e))?;
        Ok(Some((meta, data.to_vec())))
    }
}
