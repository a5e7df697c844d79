//! Backups of a running node's state, and seeding a new node's data directory from one.
//!
//! A backup is a directory holding `db/`, a RocksDB checkpoint of the node's database (hard
//! links where the filesystem allows, so it is quick and takes little room on the same disk),
//! and [`MANIFEST_FILE`], what the checkpoint is the state of: the applied log id, the membership
//! then, and the state digest ([`Manifest`]).
//!
//! To ensure correctness:
//! - The checkpoint is one point in time of the whole database, and every applied batch is one
//!   `WriteBatch`, so it holds the state after exactly one applied entry. The manifest is read
//!   from the checkpoint, never from the live database, which has moved on meanwhile.
//! - The manifest is written last, synced and renamed into place: a directory without one is a
//!   backup cut short, and a restore refuses it. A backup that fails midway is removed.
//! - A restore checks the checkpoint against the manifest's digest before writing anything, and
//!   writes only into a data directory that holds no database. It installs the state as the
//!   snapshot of the backed-up log id (the change stream resumes after it), with the new
//!   cluster's members as the membership. The node's log starts empty behind that state
//!   (openraft purges up to it on start and builds its snapshot from it) and its vote is in the
//!   backed-up entry's term, so the new cluster's first election is in a later term and its
//!   first entry follows the backed-up one. Nothing of the old cluster's log or votes is kept,
//!   so a restored node seeds a new cluster; it must never rejoin the one it was backed up from.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::meta;
use crate::raft_types::{
    LastApplied, LogId, Membership, NodeId, PeerAddr, SavedVote, StoredMembership, Vote,
};
use crate::reader::StateReader;

/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "backup.json";
/// The checkpoint's directory inside a backup directory.
const CHECKPOINT_DIR: &str = "db";
/// The manifest format this build writes and reads.
const FORMAT: u32 = 1;

/// What a backup holds, written beside its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format, so a later build can tell old backups apart.
    pub format: u32,
    /// The log id of the last entry whose effects the checkpoint holds.
    pub applied_log_id: LogId,
    /// The same entry's index: what `POST /admin/backup` answers and operators compare.
    pub applied_index: u64,
    /// The state digest at that index, as `GET /admin/digest` computes it.
    pub digest: String,
    /// The source cluster's membership at that index, for the operator: a restore replaces it.
    pub membership: StoredMembership,
}

/// Why a backup or a restore could not be made. Every variant but [`BackupError::Store`] is the
/// caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The directory asked for cannot receive a new backup.
    #[error("backup directory {dir}: {why}")]
    Target {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        why: String,
    },
    /// The directory is not a complete backup of this format.
    #[error("{dir} is not an orderq backup: {why}")]
    NotABackup {
        /// The directory.
        dir: PathBuf,
        /// What is missing or wrong.
        why: String,
    },
    /// The backup's data does not match its manifest (damaged or edited since).
    #[error("backup {dir} is damaged: {why}")]
    Damaged {
        /// The directory.
        dir: PathBuf,
        /// What does not match.
        why: String,
    },
    /// The restore's target is not usable: it holds a database already, or the members named
    /// do not include this node.
    #[error("restore into {data_dir}: {why}")]
    Seed {
        /// The data directory.
        data_dir: PathBuf,
        /// Why not.
        why: String,
    },
    /// The node's own storage (or the disk) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rocksdb::Error> for BackupError {
    fn from(e: rocksdb::Error) -> Self {
        BackupError::Store(e.into())
    }
}

impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        BackupError::Store(e.into())
    }
}

/// Checks that `dir` can receive a new backup and creates it: an absolute path that does not
/// exist yet, inside an existing directory.
fn create_target(dir: &Path) -> Result<(), BackupError> {
    let refuse = |why: &str| BackupError::Target {
        dir: dir.to_path_buf(),
        why: why.to_string(),
    };
    if !dir.is_absolute() {
        return Err(refuse("must be an absolute path on the node's machine"));
    }
    if dir.exists() {
        return Err(refuse("already exists; name a new directory"));
    }
    if !dir.parent().is_some_and(Path::is_dir) {
        return Err(refuse("its parent directory does not exist"));
    }
    fs::create_dir(dir).map_err(|e| refuse(&e.to_string()))
}

/// Backs up `db`, a running node's database, into the new directory `dir`; answers what the
/// backup holds. A failure leaves no directory behind (unless `dir` was refused).
pub fn create(db: &DB, dir: &Path) -> Result<Manifest, BackupError> {
    create_target(dir)?;
    let made = Checkpoint::new(db)
        .and_then(|checkpoint| checkpoint.create_checkpoint(dir.join(CHECKPOINT_DIR)))
        .map_err(BackupError::from)
        .and_then(|()| describe(dir))
        .and_then(|manifest| write_manifest(dir, &manifest).map(|()| manifest));
    if made.is_err() {
        let _ = fs::remove_dir_all(dir);
    }
    made
}

/// Reads what the checkpoint in `dir` holds, from the checkpoint itself.
fn describe(dir: &Path) -> Result<Manifest, BackupError> {
    let checkpoint = crate::db::open_read_only(&dir.join(CHECKPOINT_DIR))?;
    let applied_log_id =
        meta::read::<LastApplied>(&checkpoint)?.ok_or_else(|| BackupError::Target {
            dir: dir.to_path_buf(),
            why: "the node has applied nothing yet; there is nothing to back up".into(),
        })?;
    let membership = meta::read::<Membership>(&checkpoint)?.unwrap_or_default();
    let digest = StateReader::new(checkpoint).state_digest()?;
    Ok(Manifest {
        format: FORMAT,
        applied_log_id,
        applied_index: digest.applied_index,
        digest: digest.digest,
        membership,
    })
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| StoreError::corrupt("backup manifest", e))?;
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(MANIFEST_FILE))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The manifest of the backup in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let not_a_backup = |why: String| BackupError::NotABackup {
        dir: dir.to_path_buf(),
        why,
    };
    let bytes = fs::read(dir.join(MANIFEST_FILE))
        .map_err(|e| not_a_backup(format!("reading {MANIFEST_FILE}: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| not_a_backup(format!("{MANIFEST_FILE} does not parse: {e}")))?;
    if manifest.format != FORMAT {
        return Err(not_a_backup(format!(
            "format {} is not the format {FORMAT} this build reads",
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Seeds the empty data directory `data_dir` of node `node_id` from the backup in `backup`: the
/// backed-up state, as the snapshot of its log id, with `members` (this node among them) as the
/// voters of a new cluster. Every voter of that cluster is seeded from the same backup. Answers
/// the backup's manifest.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    node_id: NodeId,
    members: BTreeMap<NodeId, PeerAddr>,
) -> Result<Manifest, BackupError> {
    let refuse = |why: String| BackupError::Seed {
        data_dir: data_dir.to_path_buf(),
        why,
    };
    if !members.contains_key(&node_id) {
        return Err(refuse(format!("node {node_id} is not among the members")));
    }
    let db_dir = data_dir.join("db");
    if db_dir.exists() {
        return Err(refuse(
            "it holds a database already; a restore seeds a new node only, into an empty data \
             directory"
                .into(),
        ));
    }
    let manifest = read_manifest(backup)?;
    let checkpoint = crate::db::open_read_only(&backup.join(CHECKPOINT_DIR)).map_err(|e| {
        BackupError::NotABackup {
            dir: backup.to_path_buf(),
            why: format!("its checkpoint does not open: {e}"),
        }
    })?;
    let found = StateReader::new(checkpoint.clone()).state_digest()?;
    if (found.applied_index, &found.digest) != (manifest.applied_index, &manifest.digest) {
        return Err(BackupError::Damaged {
            dir: backup.to_path_buf(),
            why: format!(
                "the manifest says index {} digest {}, the checkpoint holds index {} digest {}",
                manifest.applied_index, manifest.digest, found.applied_index, found.digest
            ),
        });
    }
    fs::create_dir_all(data_dir)?;
    let db = crate::db::open(&db_dir)?;
    let staged = data_dir.join("restore.data");
    let mut out = BufWriter::new(fs::File::create(&staged)?);
    crate::snapshot::capture(&checkpoint, &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    crate::snapshot::restore(&db, fs::File::open(&staged)?, Some(manifest.applied_index))?;
    fs::remove_file(&staged)?;

    let log_id = manifest.applied_log_id;
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], members);
    let mut batch = WriteBatch::default();
    meta::stage::<Membership>(
        &db,
        &mut batch,
        &StoredMembership::new(Some(log_id), membership),
    )?;
    meta::stage::<SavedVote>(&db, &mut batch, &Vote::new(log_id.leader_id.term, node_id))?;
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    db.write_opt(batch, &synced).map_err(StoreError::from)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_goes_only_into_a_new_absolute_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let refused = |dir: &Path| matches!(create_target(dir), Err(BackupError::Target { .. }));
        assert!(refused(Path::new("relative/backup")));
        assert!(refused(tmp.path()), "an existing directory");
        assert!(refused(&tmp.path().join("missing/backup")), "no parent");
        assert!(create_target(&tmp.path().join("backup")).is_ok());
    }

    #[test]
    fn a_restored_node_holds_the_backed_up_state_as_a_member_of_a_new_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let source = crate::db::open(&tmp.path().join("source")).unwrap();
        let orders = || crate::db::cf(&source, crate::keys::CF_ORDERS).unwrap();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(7, 2), 42);
        meta::write::<LastApplied>(&source, &log_id, false).unwrap();
        source.put_cf(orders(), b"o1", b"backed up").unwrap();
        let backup = tmp.path().join("backup");
        let manifest = create(&source, &backup).unwrap();
        assert_eq!(
            (manifest.applied_index, manifest.applied_log_id),
            (42, log_id)
        );
        source.put_cf(orders(), b"o2", b"written after").unwrap();

        let members: BTreeMap<NodeId, PeerAddr> =
            [(1, PeerAddr::default()), (2, PeerAddr::default())].into();
        let data_dir = tmp.path().join("node1");
        restore(&backup, &data_dir, 1, members.clone()).unwrap();
        let restored = crate::db::open(&data_dir.join("db")).unwrap();
        let digest = StateReader::new(restored.clone()).state_digest().unwrap();
        assert_eq!(digest.applied_index, 42);
        assert_eq!(
            digest.digest, manifest.digest,
            "the backed-up state, nothing later"
        );
        let vote = meta::read::<SavedVote>(&restored).unwrap();
        assert_eq!(
            vote,
            Some(Vote::new(7, 1)),
            "elections start after the backed-up term"
        );
        let membership = meta::read::<Membership>(&restored).unwrap().unwrap();
        let voters: Vec<NodeId> = membership.membership().voter_ids().collect();
        assert_eq!(voters, vec![1, 2], "the new cluster's members");
        drop(restored);

        let refused = restore(&backup, &data_dir, 1, members.clone());
        assert!(
            matches!(refused, Err(BackupError::Seed { .. })),
            "{refused:?}"
        );
        let outsider = restore(&backup, &tmp.path().join("node3"), 3, members.clone());
        assert!(
            matches!(outsider, Err(BackupError::Seed { .. })),
            "{outsider:?}"
        );

        let mut edited = manifest;
        edited.digest = "0".repeat(64);
        write_manifest(&backup, &edited).unwrap();
        let damaged = restore(&backup, &tmp.path().join("node2"), 2, members);
        assert!(
            matches!(damaged, Err(BackupError::Damaged { .. })),
            "{damaged:?}"
        );
    }

    #[test]
    fn a_directory_without_a_manifest_is_not_a_backup() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_manifest(tmp.path()),
            Err(BackupError::NotABackup { .. })
        ));
        fs::write(tmp.path().join(MANIFEST_FILE), b"{}").unwrap();
        assert!(matches!(
            read_manifest(tmp.path()),
            Err(BackupError::NotABackup { .. })
        ));
    }
}
