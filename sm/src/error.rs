//! Storage errors: the disk or the data on it failed. Unlike a `Rejection`, these stop the node's
//! Raft (openraft treats a storage error as fatal), because continuing could diverge replicas.

/// A failure reading or writing the node's RocksDB.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB itself failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value did not decode: corruption or an incompatible version.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// A file beside the database (the current snapshot) failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// A decoding failure of `what`.
    pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}
