//! Snapshots: a point-in-time copy of the state column families, streamed through files so a
//! snapshot of millions of orders never sits in memory.
//!
//! To ensure correctness:
//! - A snapshot is read from one RocksDB snapshot, and its `last_log_id` and membership are read
//!   from that same RocksDB snapshot, so the data is exactly the state after `last_log_id`, never
//!   newer (the pitfall of openraft's example store).
//! - The current snapshot is a data file plus `current.meta` naming it; both are synced, and the
//!   meta is replaced by rename, so a crash leaves the old or the new snapshot, never half of one.
//! - Installing replaces every state column family. It is written in bounded batches, so a
//!   `restoring` marker (outside the state) is set first and cleared by the last synced batch;
//!   a node that crashed in between finishes the restore from the current snapshot on start.
//!   Installing also empties the node-local change stream and moves its floor to the snapshot's
//!   last entry (the snapshot does not carry change records).

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use lz4_flex::frame::{FrameDecoder, FrameEncoder, FrameInfo};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{KEY_END, STATE_CFS};
use crate::meta::{self, Restoring};
use crate::raft_types::{LastApplied, LogId, Membership, SnapshotMeta, StoredMembership};

/// What a snapshot stream starts with since its records are LZ4-compressed (an LZ4 frame
/// follows). A snapshot is the whole state, records JSON: compressed it is a fraction of the
/// bytes on disk and on the wire to a lagging follower.
pub const LZ4_FORMAT: &[u8; 4] = b"OQS1";

/// Bytes of puts per write batch while restoring.
const RESTORE_BATCH_BYTES: usize = 16 << 20;

/// Streams the state column families, read from one RocksDB snapshot, into `out`: [`LZ4_FORMAT`]
/// followed by an LZ4 frame of `(cf tag u8, key len u32, key, value len u32, value)*`; answers the
/// log id and membership the data is the state of.
pub fn capture(
    db: &DB,
    out: &mut impl Write,
) -> Result<(Option<LogId>, StoredMembership), StoreError> {
    let view = db.snapshot();
    let mut at_view = ReadOptions::default();
    at_view.set_snapshot(&view);
    let last_applied = meta::read_with::<LastApplied>(db, &at_view)?;
    let membership = meta::read_with::<Membership>(db, &at_view)?.unwrap_or_default();
    out.write_all(LZ4_FORMAT)?;
    // The frame's content checksum lets `validate` refuse a damaged transfer, not only a short
    // one.
    let mut records = FrameEncoder::with_frame_info(FrameInfo::new().content_checksum(true), out);
    for (tag, name) in STATE_CFS.iter().enumerate() {
        for item in view.iterator_cf(cf(db, name)?, IteratorMode::Start) {
            let (key, value) = item?;
            records.write_all(&[tag as u8])?;
            write_bytes(&mut records, &key)?;
            write_bytes(&mut records, &value)?;
        }
    }
    records
        .finish()
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
    Ok((last_applied, membership))
}

/// The records of a snapshot stream, as [`capture`] writes them or as nodes before LZ4 wrote
/// them (the records alone, whose first byte is a column family tag, never `O`), so a snapshot
/// taken or received before an upgrade still installs.
fn records<'a>(mut input: impl Read + 'a) -> Result<Box<dyn Read + 'a>, StoreError> {
    let mut head = Vec::with_capacity(LZ4_FORMAT.len());
    (&mut input)
        .take(LZ4_FORMAT.len() as u64)
        .read_to_end(&mut head)?;
    if head == LZ4_FORMAT {
        return Ok(Box::new(FrameDecoder::new(BufReader::new(input))));
    }
    Ok(Box::new(BufReader::new(
        std::io::Cursor::new(head).chain(input),
    )))
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| StoreError::corrupt("snapshot", "record over 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

fn read_bytes(input: &mut impl Read) -> Result<Vec<u8>, StoreError> {
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|e| StoreError::corrupt("snapshot", format!("truncated record: {e}")))?;
    let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
    input
        .read_exact(&mut bytes)
        .map_err(|e| StoreError::corrupt("snapshot", format!("truncated record: {e}")))?;
    Ok(bytes)
}

/// Reads a whole snapshot stream without writing anything: every record must be complete and
/// name a known column family, and a compressed stream must match its checksum. Run before a
/// received snapshot becomes current, so a transfer that arrived cut short or damaged is refused
/// (and sent again) instead of half-installed.
pub fn validate(input: impl Read) -> Result<u64, StoreError> {
    let mut input = records(input)?;
    let mut records = 0u64;
    loop {
        let mut tag = [0u8; 1];
        if input.read(&mut tag)? == 0 {
            return Ok(records);
        }
        if STATE_CFS.get(tag[0] as usize).is_none() {
            return Err(StoreError::corrupt(
                "snapshot",
                format!("unknown column family tag {}", tag[0]),
            ));
        }
        read_bytes(&mut input)?;
        read_bytes(&mut input)?;
        records += 1;
    }
}

/// Replaces the whole state with the snapshot in `input` (as [`capture`] wrote it), the state
/// after the entry at `last_index`, durably and recoverably (see the module docs). The last batch
/// forgets this node's change records, which the snapshot does not carry: the stream resumes
/// after `last_index`.
pub fn restore(db: &DB, input: impl Read, last_index: Option<u64>) -> Result<(), StoreError> {
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    meta::write::<Restoring>(db, &(), true)?;
    let mut batch = WriteBatch::default();
    for name in STATE_CFS {
        batch.delete_range_cf(cf(db, name)?, [].as_slice(), KEY_END);
    }
    let mut input = records(input)?;
    loop {
        let mut tag = [0u8; 1];
        match input.read(&mut tag)? {
            0 => break,
            _ => {
                let name = STATE_CFS.get(tag[0] as usize).ok_or_else(|| {
                    StoreError::corrupt("snapshot", format!("unknown column family tag {}", tag[0]))
                })?;
                let key = read_bytes(&mut input)?;
                let value = read_bytes(&mut input)?;
                batch.put_cf(cf(db, name)?, key, value);
                if batch.size_in_bytes() >= RESTORE_BATCH_BYTES {
                    db.write(std::mem::take(&mut batch))?;
                }
            }
        }
    }
    crate::changes::reset_after_snapshot(db, &mut batch, last_index)?;
    meta::stage_delete::<Restoring>(db, &mut batch)?;
    db.write_opt(batch, &synced)?;
    Ok(())
}

/// What `current.meta` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentSnapshot {
    /// The snapshot's metadata.
    meta: SnapshotMeta,
    /// Its data file, relative to the snapshot directory.
    data_file: String,
}

/// The snapshot directory beside the database: data files and `current.meta`.
pub struct SnapshotStore {
    /// `<data_dir>/snapshot`.
    dir: PathBuf,
    /// Data files being written by a build or a reception right now: never deleted.
    in_progress: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
    /// A snapshot from the leader is being received or installed (see [`SnapshotStore::purge_limit`]).
    installing: std::sync::atomic::AtomicBool,
    /// Held while the current snapshot changes: a build and an install can finish together.
    changing: std::sync::Mutex<()>,
}

/// How far the Raft log may be purged (see [`SnapshotStore::purge_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeLimit {
    /// As far as openraft asks.
    Any,
    /// No further than this entry.
    UpTo(LogId),
    /// Not at all.
    Nothing,
}

/// The last log id whose effects are written to the state (what survives a restart).
pub fn applied(db: &DB) -> Result<Option<LogId>, StoreError> {
    meta::read::<LastApplied>(db)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl SnapshotStore {
    /// The snapshot store under `dir` (created if needed). Finishes an install that a crash
    /// interrupted, from the current snapshot: one whose restore had begun (the marker), or one
    /// made current before its restore began (the snapshot is ahead of the applied state).
    pub fn open(dir: &Path, db: &DB) -> Result<Self, StoreError> {
        fs::create_dir_all(dir)?;
        let store = SnapshotStore {
            dir: dir.to_path_buf(),
            in_progress: Default::default(),
            installing: Default::default(),
            changing: Default::default(),
        };
        let restoring = meta::read::<Restoring>(db)?.is_some();
        let current = store.current()?;
        let snapshot_index = current
            .as_ref()
            .and_then(|(meta, _)| meta.last_log_id.map(|l| l.index));
        let applied_index = applied(db)?.map(|l| l.index);
        if restoring || snapshot_index > applied_index {
            let (meta, data) = current.ok_or_else(|| {
                StoreError::corrupt("snapshot", "restore interrupted but no current snapshot")
            })?;
            tracing::warn!(
                ?snapshot_index,
                ?applied_index,
                "finishing a snapshot install interrupted by a crash"
            );
            restore(db, fs::File::open(data)?, meta.last_log_id.map(|l| l.index))?;
        }
        store.remove_unreferenced()?;
        Ok(store)
    }

    /// Marks a snapshot from the leader as being received, until [`SnapshotStore::installed`].
    pub fn receiving(&self) {
        self.installing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The snapshot being received is installed: state and snapshot agree again.
    pub fn installed(&self) {
        self.installing
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// How far the Raft log may be purged without losing the only copy of part of the state.
    ///
    /// openraft purges the log up to a snapshot it installs as soon as the install starts, not
    /// when it is done. Until the install is done, the entries after what this node holds
    /// durably (its current snapshot, its applied state) are the only copy of that part of the
    /// state: a crash, or a refused snapshot, in between would leave a node whose log no longer
    /// reaches its state, which openraft refuses to start. And openraft starts only from a log
    /// purged no further than its current snapshot, when it has one (with none, no further than
    /// what is committed). So the log is purged no further than the current snapshot, or the
    /// applied state when there is no snapshot yet; what is held back goes with a later purge.
    /// (Purging to the applied state past an older snapshot left a node killed during an
    /// install unable to start: found by the chaos harness.) Outside an install a node purges
    /// only behind its own snapshots, which this limit never holds back, and a store that has
    /// neither (openraft's storage suite) purges as asked.
    pub fn purge_limit(&self, db: &DB) -> Result<PurgeLimit, StoreError> {
        let snapshot = self.current_last_log_id()?;
        let applied = applied(db)?;
        let installing = self.installing.load(std::sync::atomic::Ordering::SeqCst);
        Ok(match snapshot.or(applied) {
            Some(held) => PurgeLimit::UpTo(held),
            None if installing => PurgeLimit::Nothing,
            None => PurgeLimit::Any,
        })
    }

    /// A fresh path for a snapshot being written or received.
    /// The path is protected from cleanup until [`SnapshotStore::set_current`] or
    /// [`SnapshotStore::finish_receiving`] releases it.
    pub fn new_data_path(&self, kind: &str) -> PathBuf {
        let path = self.dir.join(format!("{kind}-{}.data", unique_suffix()));
        if let Ok(mut busy) = self.in_progress.lock() {
            busy.insert(path.clone());
        }
        path
    }

    /// A snapshot reception ended (installed or refused): its file, and those of receptions
    /// that were abandoned before it (openraft receives one stream at a time), may go.
    pub fn finish_receiving(&self) {
        if let Ok(mut busy) = self.in_progress.lock() {
            busy.retain(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("recv-"))
            });
        }
    }

    /// Builds a snapshot of `db` into a new data file and makes it current; answers it with the
    /// file open for reading (opened before it can be replaced and removed).
    pub fn build(&self, db: &DB) -> Result<(SnapshotMeta, fs::File), StoreError> {
        let path = self.new_data_path("snap");
        let mut out = BufWriter::new(fs::File::create(&path)?);
        let (last_log_id, last_membership) = capture(db, &mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| StoreError::Io(e.into_error()))?;
        file.sync_all()?;
        let snapshot_id = match last_log_id {
            Some(id) => format!(
                "{}-{}-{}-{}",
                id.leader_id.term,
                id.leader_id.node_id,
                id.index,
                unique_suffix()
            ),
            None => format!("empty-{}", unique_suffix()),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let reader = fs::File::open(&path)?;
        self.set_current(&meta, &path)?;
        Ok((meta, reader))
    }

    /// The current snapshot with its data file open for reading, if there is one. The file can
    /// be replaced and removed between reading which it is and opening it (a build or an install
    /// finishing meanwhile); then the newer one is read instead.
    pub fn open_current(&self) -> Result<Option<(SnapshotMeta, fs::File)>, StoreError> {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let Some((meta, path)) = self.current()? else {
                return Ok(None);
            };
            match fs::File::open(&path) {
                Ok(file) => return Ok(Some((meta, file))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < ATTEMPTS => {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Makes the data file at `data` (inside the directory) the current snapshot with `meta`,
    /// unless the current one is newer already (a build that finished after an install of a
    /// later snapshot): then `data` is simply let go.
    pub fn set_current(&self, meta: &SnapshotMeta, data: &Path) -> Result<(), StoreError> {
        let _changing = self
            .changing
            .lock()
            .map_err(|_| StoreError::corrupt("snapshot", "a snapshot change panicked"))?;
        let newer = self
            .current()?
            .is_some_and(|(current, _)| current.last_log_id > meta.last_log_id);
        if newer {
            if let Ok(mut busy) = self.in_progress.lock() {
                busy.remove(data);
            }
            return self.remove_unreferenced();
        }
        let data_file = data
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| StoreError::corrupt("snapshot", "data file without a name"))?
            .to_string();
        let current = CurrentSnapshot {
            meta: meta.clone(),
            data_file,
        };
        let bytes =
            serde_json::to_vec(&current).map_err(|e| StoreError::corrupt("snapshot meta", e))?;
        let tmp = self.dir.join("current.meta.tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join("current.meta"))?;
        sync_dir(&self.dir)?;
        if let Ok(mut busy) = self.in_progress.lock() {
            busy.remove(data);
        }
        self.remove_unreferenced()
    }

    /// The last log id the current snapshot holds, if there is a snapshot and it holds any.
    pub fn current_last_log_id(&self) -> Result<Option<LogId>, StoreError> {
        Ok(self.current()?.and_then(|(meta, _)| meta.last_log_id))
    }

    /// The current snapshot's metadata and data file, if there is one.
    pub fn current(&self) -> Result<Option<(SnapshotMeta, PathBuf)>, StoreError> {
        let bytes = match fs::read(self.dir.join("current.meta")) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let current: CurrentSnapshot =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt("snapshot meta", e))?;
        Ok(Some((current.meta, self.dir.join(current.data_file))))
    }

    /// Deletes data files that are neither the current snapshot nor being written (older
    /// snapshots, finished or abandoned receptions), so the directory holds one snapshot.
    fn remove_unreferenced(&self) -> Result<(), StoreError> {
        let keep = self.current()?.map(|(_, path)| path);
        let busy = self
            .in_progress
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let is_data = path.extension().is_some_and(|e| e == "data");
            if is_data && Some(&path) != keep.as_ref() && !busy.contains(&path) {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }
}
