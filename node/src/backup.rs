//! `orderq backup` and `orderq restore`: the operator's side of backups (`sm::backup` makes and
//! reads them).
//!
//! `orderq backup` asks a running node for a backup (`POST /admin/backup`); the backup is written
//! on that node's machine. `orderq restore` seeds the data directory of a node of a new cluster
//! from one, offline, with the same configuration the node will be served with: every voter of
//! the new cluster is seeded from the same backup, then all are started.
//!
//! To ensure correctness:
//! - A restore never touches a data directory that holds a database (`sm::backup::restore`).
//! - A restore refuses a node id that a live cluster's leader still counts as a member (the same
//!   question [`crate::wipe_guard`] asks at start): a node id is never brought back into a live
//!   cluster with old data. A restored cluster is a new cluster.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;
use sm::backup::Manifest;

use crate::config::{Config, ConfigError, ServeArgs};

/// `orderq backup` flags.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The new directory the backup goes to, by absolute path on the node's machine.
    #[arg(long)]
    pub dir: String,
    /// The node's API.
    #[arg(long, env = "ORDERQ_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The node's admin token. Prefer the environment variable: a value on the command line is
    /// visible to every user of the machine.
    #[arg(long, env = "ORDERQ_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the node's JSON answer instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// `orderq restore` flags: the backup, and the configuration of the node being seeded, given
/// exactly as to `orderq serve` (its id, data directory, addresses and peers matter here).
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup directory (`orderq backup --dir`), readable from this machine.
    #[arg(long)]
    pub from: PathBuf,
    /// The node's configuration.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Why `orderq backup` or `orderq restore` failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupCliError {
    /// The node could not be reached or did not answer.
    #[error("asking {url}: {source}")]
    Unreachable {
        /// The node's API.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The node refused the backup; its error message says why.
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// The node's API.
        url: String,
        /// HTTP status.
        status: u16,
        /// The node's answer.
        message: String,
    },
    /// The configuration of the node to seed is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A live cluster still counts this node id as a member.
    #[error(transparent)]
    LiveMember(#[from] crate::wipe_guard::WipedMember),
    /// The backup or the data directory could not be used.
    #[error(transparent)]
    Backup(#[from] sm::backup::BackupError),
}

impl BackupCliError {
    /// The process exit status: 2 for what the operator must fix (as a bad configuration),
    /// 1 for a failure that may pass.
    pub fn exit_code(&self) -> i32 {
        match self {
            BackupCliError::Unreachable { .. } => 1,
            BackupCliError::Backup(sm::backup::BackupError::Store(_)) => 1,
            BackupCliError::Refused { status, .. } if *status >= 500 => 1,
            _ => 2,
        }
    }
}

/// The part of `POST /admin/backup`'s answer the sentence names.
#[derive(Deserialize)]
struct BackupAnswer {
    /// The backup directory.
    dir: String,
    /// The index the backup holds the state after.
    applied_index: u64,
    /// The state digest at that index.
    digest: String,
}

/// Asks the node at `args.url` for a backup; answers what to print.
pub async fn backup(args: &BackupArgs) -> Result<String, BackupCliError> {
    let url = args.url.trim_end_matches('/').to_string();
    let unreachable = |source| BackupCliError::Unreachable {
        url: url.clone(),
        source,
    };
    let mut request = reqwest::Client::new()
        .post(format!("{url}/admin/backup"))
        .json(&serde_json::json!({ "dir": args.dir }));
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(unreachable)?;
    if status != 200 {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        return Err(BackupCliError::Refused {
            url,
            status,
            message,
        });
    }
    if args.json {
        return Ok(body);
    }
    let answer: BackupAnswer =
        serde_json::from_str(&body).map_err(|e| BackupCliError::Refused {
            url: url.clone(),
            status,
            message: format!("an answer that does not parse ({e}): {body}"),
        })?;
    Ok(format!(
        "backed up the state at index {} (digest {}) into {} on the node at {url}",
        answer.applied_index, answer.digest, answer.dir
    ))
}

/// Seeds the data directory of the node `args.serve` configures from the backup `args.from`;
/// answers what to print.
pub async fn restore(args: &RestoreArgs) -> Result<String, BackupCliError> {
    let config = Config::load(&args.serve)?;
    crate::wipe_guard::ask_peers(&config).await?;
    let (from, data_dir, members) = (args.from.clone(), config.data_dir.clone(), config.members());
    let manifest: Manifest = tokio::task::spawn_blocking(move || {
        sm::backup::restore(&from, &data_dir, config.node_id, members)
    })
    .await
    .map_err(|e| sm::StoreError::from(std::io::Error::other(e)))
    .map_err(sm::backup::BackupError::from)??;
    Ok(format!(
        "seeded {} from {}: the state at index {} (digest {}); start the node with the same \
         configuration once every voter is seeded",
        config.data_dir.display(),
        args.from.display(),
        manifest.applied_index,
        manifest.digest
    ))
}
