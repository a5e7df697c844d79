//! Snapshots are point-in-time copies and installing one replaces the state.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};
use sm::command::{Action, Command, CommandBatch, PutSku};
use sm::raft_types::{Entry, LogId};
use sm::Storage;

fn put_entry(index: u64, sku: &str, stock: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(CommandBatch {
            now_ms: 0,
            commands: vec![Command::new(Action::PutSku(PutSku {
                sku: sku.into(),
                stock,
                price_cents: 1,
                per_user_limit: 0,
            }))],
        }),
    }
}

/// A source storage that applied `entries`, and a snapshot of it.
async fn snapshot_of(
    entries: Vec<Entry>,
) -> (
    tempfile::TempDir,
    openraft::Snapshot<sm::raft_types::TypeConfig>,
) {
    let source_dir = tempfile::tempdir().unwrap();
    let mut source = Storage::open(source_dir.path()).unwrap();
    source.state.apply(entries).await.unwrap();
    let snapshot = source
        .state
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    (source_dir, snapshot)
}

/// A source storage holding SKU `A` at index 1 and `B` at index 2, and a snapshot of it.
async fn snapshot_of_two_entries() -> (
    tempfile::TempDir,
    openraft::Snapshot<sm::raft_types::TypeConfig>,
) {
    snapshot_of(vec![put_entry(1, "A", 5), put_entry(2, "B", 7)]).await
}

#[tokio::test]
async fn a_snapshot_is_the_state_at_its_index_and_installs_whole() {
    let (source_dir, snapshot) = snapshot_of_two_entries().await;
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(2));
    // Changes after the snapshot are not in it.
    let mut source = Storage::open(source_dir.path()).unwrap();
    source
        .state
        .apply(vec![put_entry(3, "C", 9)])
        .await
        .unwrap();

    let target_dir = tempfile::tempdir().unwrap();
    let mut target = Storage::open(target_dir.path()).unwrap();
    target
        .state
        .apply(vec![put_entry(1, "Z", 1)])
        .await
        .unwrap();
    let meta = snapshot.meta.clone();
    target
        .state
        .install_snapshot(&meta, snapshot.snapshot)
        .await
        .unwrap();

    assert_eq!(target.reader.sku("A").unwrap().unwrap().stock, 5);
    assert_eq!(target.reader.sku("B").unwrap().unwrap().stock, 7);
    assert!(
        target.reader.sku("C").unwrap().is_none(),
        "the snapshot holds no later change"
    );
    assert!(
        target.reader.sku("Z").unwrap().is_none(),
        "installing replaced the old state"
    );
    let (applied, _) = target.state.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
    let current = target.state.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, meta);
}

#[tokio::test]
async fn an_install_interrupted_by_a_crash_finishes_on_start() {
    let (_source, snapshot) = snapshot_of(vec![put_entry(1, "A", 5)]).await;

    let target_dir = tempfile::tempdir().unwrap();
    let mut target = Storage::open(target_dir.path()).unwrap();
    target
        .state
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    drop(target);

    // A crash in the middle of a restore: the marker is set and the state is half-written.
    {
        let db = sm::db::open(&target_dir.path().join("db")).unwrap();
        let raft_meta = db.cf_handle(sm::keys::CF_RAFT_META).unwrap();
        db.put_cf(raft_meta, sm::keys::META_RESTORING, b"1")
            .unwrap();
        let skus = db.cf_handle(sm::keys::CF_SKUS).unwrap();
        db.delete_cf(skus, b"A").unwrap();
        db.put_cf(skus, b"half", b"{}").unwrap();
    }

    let reopened = Storage::open(target_dir.path()).unwrap();
    assert_eq!(
        reopened.reader.sku("A").unwrap().unwrap().stock,
        5,
        "the restore was finished"
    );
    assert!(
        matches!(reopened.reader.sku("half"), Ok(None)),
        "the half-written state is gone"
    );
}

#[tokio::test]
async fn a_snapshot_cut_short_is_refused_and_changes_nothing() {
    let (_source, snapshot) = snapshot_of_two_entries().await;
    let meta = snapshot.meta.clone();
    let data = bytes_of(snapshot).await;
    assert!(sm::snapshot::validate(data.as_slice()).is_ok());

    let target_dir = tempfile::tempdir().unwrap();
    let mut target = Storage::open(target_dir.path()).unwrap();
    target
        .state
        .apply(vec![put_entry(1, "Z", 1)])
        .await
        .unwrap();
    let mut received = target.state.begin_receiving_snapshot().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut received, &data[..data.len() - 3])
        .await
        .unwrap();
    let refused = target.state.install_snapshot(&meta, received).await;
    assert!(refused.is_err(), "a truncated snapshot is refused");
    assert_eq!(
        target.reader.sku("Z").unwrap().unwrap().stock,
        1,
        "the old state stays"
    );
    assert!(target.state.get_current_snapshot().await.unwrap().is_none());
    drop(target);
    let reopened = Storage::open(target_dir.path()).unwrap();
    assert_eq!(
        reopened.reader.sku("Z").unwrap().unwrap().stock,
        1,
        "and the node starts again"
    );
}

/// The bytes of `snapshot`'s data file.
async fn bytes_of(snapshot: openraft::Snapshot<sm::raft_types::TypeConfig>) -> Vec<u8> {
    let mut data = Vec::new();
    let mut file = snapshot.snapshot.into_std().await;
    std::io::Read::read_to_end(&mut file, &mut data).unwrap();
    data
}

/// Installs `data` as `meta`'s snapshot on `target`.
async fn install(target: &mut Storage, meta: &sm::raft_types::SnapshotMeta, data: &[u8]) {
    let mut received = target.state.begin_receiving_snapshot().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut received, data)
        .await
        .unwrap();
    target.state.install_snapshot(meta, received).await.unwrap();
}

#[tokio::test]
async fn a_snapshot_is_compressed_and_one_written_before_compression_still_installs() {
    // Orders-like records, the same JSON shape many times over, as a shop's state is.
    let entries = (1..=200)
        .map(|index| put_entry(index, &format!("sku-{index:05}"), index))
        .collect();
    let (_source, snapshot) = snapshot_of(entries).await;
    let meta = snapshot.meta.clone();
    let data = bytes_of(snapshot).await;
    assert!(
        data.starts_with(sm::snapshot::LZ4_FORMAT),
        "{:?}",
        &data[..8]
    );
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut lz4_flex::frame::FrameDecoder::new(&data[sm::snapshot::LZ4_FORMAT.len()..]),
        &mut raw,
    )
    .unwrap();
    assert!(
        data.len() * 3 < raw.len(),
        "{} bytes compressed, {} raw",
        data.len(),
        raw.len()
    );

    // The records alone are what a node wrote before: a snapshot it sent or left current.
    for (name, bytes) in [("compressed", &data), ("raw", &raw)] {
        let target_dir = tempfile::tempdir().unwrap();
        let mut target = Storage::open(target_dir.path()).unwrap();
        install(&mut target, &meta, bytes).await;
        for index in [1, 200] {
            let sku = target.reader.sku(&format!("sku-{index:05}")).unwrap();
            assert_eq!(sku.map(|s| s.stock), Some(index), "{name}");
        }
    }
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused() {
    let (_source, snapshot) = snapshot_of_two_entries().await;
    let data = bytes_of(snapshot).await;
    assert!(sm::snapshot::validate(data.as_slice()).is_ok());
    let mut damaged = data.clone();
    let middle = sm::snapshot::LZ4_FORMAT.len() + (data.len() - sm::snapshot::LZ4_FORMAT.len()) / 2;
    damaged[middle] ^= 0x20;
    assert!(sm::snapshot::validate(damaged.as_slice()).is_err());
}

#[tokio::test]
async fn only_the_current_snapshot_stays_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open(dir.path()).unwrap();
    for index in 1..=3 {
        storage
            .state
            .apply(vec![put_entry(index, "A", index)])
            .await
            .unwrap();
        let mut builder = storage.state.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap();
    }
    let data_files = std::fs::read_dir(dir.path().join("snapshot"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "data"))
        })
        .count();
    assert_eq!(data_files, 1, "older snapshots are deleted");
}

#[tokio::test]
async fn a_snapshot_made_current_before_its_restore_began_is_restored_on_start() {
    let (_source, snapshot) = snapshot_of_two_entries().await;
    let target_dir = tempfile::tempdir().unwrap();
    let target = Storage::open(target_dir.path()).unwrap();
    // A crash right after the received snapshot became current, before its restore began: no
    // restore marker, and the applied state is still the old one.
    let store = target.state.snapshots();
    let path = store.new_data_path("recv");
    let mut file = snapshot.snapshot.into_std().await;
    std::io::copy(&mut file, &mut std::fs::File::create(&path).unwrap()).unwrap();
    store.set_current(&snapshot.meta, &path).unwrap();
    drop(store);
    drop(target);

    let mut reopened = Storage::open(target_dir.path()).unwrap();
    assert_eq!(reopened.reader.sku("B").unwrap().unwrap().stock, 7);
    let (applied, _) = reopened.state.applied_state().await.unwrap();
    assert_eq!(
        applied, snapshot.meta.last_log_id,
        "state and snapshot agree"
    );
}

#[tokio::test]
async fn while_a_snapshot_installs_the_log_keeps_what_the_state_does_not_hold() {
    use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
    let target_dir = tempfile::tempdir().unwrap();
    let mut target = Storage::open(target_dir.path()).unwrap();
    let entries: Vec<Entry> = (1..=6).map(|i| put_entry(i, "L", i)).collect();
    target.log.blocking_append(entries.clone()).await.unwrap();
    target.state.apply(entries[..1].to_vec()).await.unwrap();

    // openraft purges up to the snapshot it installs as soon as the install starts: while it
    // has not finished, entries after the applied state (index 1) stay.
    let _received = target.state.begin_receiving_snapshot().await.unwrap();
    target.log.purge(entries[4].log_id).await.unwrap();
    let state = target.log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
    let kept = target.log.try_get_log_entries(2..=6).await.unwrap();
    assert_eq!(kept.len(), 5, "entries 2..=6 are still there");
    drop(_received);

    // Once the node holds more durably, the purge goes as far as that.
    target.state.apply(entries[1..4].to_vec()).await.unwrap();
    target.log.purge(entries[4].log_id).await.unwrap();
    let state = target.log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(4));
}

#[tokio::test]
async fn a_snapshot_finishing_after_a_newer_one_does_not_replace_it() {
    let (dir, newer) = snapshot_of_two_entries().await;
    let mut storage = Storage::open(dir.path()).unwrap();
    // A build of index 1 that finishes only now (it raced an install of index 2).
    let store = storage.state.snapshots();
    let older_path = store.new_data_path("snap");
    std::fs::write(&older_path, b"older").unwrap();
    let mut older = newer.meta.clone();
    older.last_log_id = Some(LogId::new(CommittedLeaderId::new(1, 1), 1));
    older.snapshot_id = "older".into();
    store.set_current(&older, &older_path).unwrap();

    let current = storage.state.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, newer.meta, "the newer snapshot stays current");
    assert!(!older_path.exists(), "the older file is let go");
}

#[tokio::test]
async fn a_purge_held_back_by_an_install_is_finished_on_start() {
    use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
    // The leader's state at index 4, as a snapshot.
    let history: Vec<Entry> = (1..=4).map(|i| put_entry(i, "H", i)).collect();
    let (_source, snapshot) = snapshot_of(history.clone()).await;

    // A node that got only entry 1 installs it: openraft purges up to 4 as the install starts,
    // which is held back to what the node holds (1), then appends after the snapshot.
    let target_dir = tempfile::tempdir().unwrap();
    let mut target = Storage::open(target_dir.path()).unwrap();
    target
        .log
        .blocking_append(history[..1].to_vec())
        .await
        .unwrap();
    target.state.apply(history[..1].to_vec()).await.unwrap();
    let received = target.state.begin_receiving_snapshot().await.unwrap();
    target.log.purge(history[3].log_id).await.unwrap();
    drop(received);
    let meta = snapshot.meta.clone();
    target
        .state
        .install_snapshot(&meta, snapshot.snapshot)
        .await
        .unwrap();
    let later: Vec<Entry> = (5..=6).map(|i| put_entry(i, "H", i)).collect();
    target.log.blocking_append(later.clone()).await.unwrap();
    drop(target);

    // Restarted before any later purge: the log must reach from its purge point to its end
    // without a hole (2..=4 never arrived), as openraft reads it at start.
    let mut reopened = Storage::open(target_dir.path()).unwrap();
    let state = reopened.log.get_log_state().await.unwrap();
    let purged = state.last_purged_log_id.map_or(0, |l| l.index);
    let last = state.last_log_id.map(|l| l.index).unwrap();
    assert_eq!(last, 6);
    let held = reopened
        .log
        .try_get_log_entries(purged + 1..=last)
        .await
        .unwrap();
    let indexes: Vec<u64> = held.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, (purged + 1..=last).collect::<Vec<_>>());
    assert_eq!(purged, 4, "purged through the installed snapshot");
}

#[tokio::test]
async fn while_a_snapshot_installs_the_log_is_purged_no_further_than_the_current_snapshot() {
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    let target_dir = tempfile::tempdir().unwrap();
    let mut target = Storage::open(target_dir.path()).unwrap();
    let entries: Vec<Entry> = (1..=6).map(|i| put_entry(i, "L", i)).collect();
    target.log.blocking_append(entries.clone()).await.unwrap();
    target.state.apply(entries[..2].to_vec()).await.unwrap();
    let own = target
        .state
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    target.state.apply(entries[2..4].to_vec()).await.unwrap();

    // The leader sends a snapshot at 6; openraft purges up to it as the install starts, and the
    // node is killed before the install is done. openraft starts only from a log purged no
    // further than the current snapshot (2 here, though the state holds 4): the chaos harness
    // found a node killed in this window that never started again.
    let received = target.state.begin_receiving_snapshot().await.unwrap();
    target.log.purge(entries[5].log_id).await.unwrap();
    drop(received);
    drop(target);

    let mut reopened = Storage::open(target_dir.path()).unwrap();
    let purged = reopened
        .log
        .get_log_state()
        .await
        .unwrap()
        .last_purged_log_id;
    let current = reopened
        .state
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.meta.last_log_id, own.meta.last_log_id);
    assert!(
        purged <= current.meta.last_log_id,
        "purged through {purged:?}, past the current snapshot {:?}",
        current.meta.last_log_id
    );
}
