//! openraft's own storage conformance suite against our log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use sm::raft_types::{StorageError, TypeConfig};
use sm::{LogStore, StateMachine, Storage};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("open storage");
        Ok((dir, storage.log, storage.state))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
