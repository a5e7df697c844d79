//! An example change-stream consumer: follows `GET /v1/changes` of one node (point it at a
//! learner), appends every change as an NDJSON line to `--out`, and keeps its position in
//! `--state`. Kill it at any moment and start it again with the same files: it resumes after the
//! last change it wrote, with no gap and no repeat.
//!
//! ```text
//! follow-changes --from http://127.0.0.1:8084 --state changes.offset --out changes.ndjson
//! ```
//!
//! Exit codes: 0 after `--exit-when-idle` saw an empty page, 2 for bad usage or files, 3 when the
//! node no longer retains the saved offset (410 `offset_expired`: start again from a fresh state
//! file, or point at a node with longer retention).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cluster::{ChangeFollower, Error, NodeClient};

/// Pause after a failed request, so a follower of a node that is down does not spin.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Follow orderq's change stream into an NDJSON file, resuming where it stopped")]
struct Args {
    /// API base URL of the node to follow (best a learner).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    from: String,
    /// File holding `OFFSET LENGTH` of the last committed page.
    #[arg(long)]
    state: PathBuf,
    /// NDJSON output, one change per line.
    #[arg(long)]
    out: PathBuf,
    /// Changes per page.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// Long-poll wait per page, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    wait_ms: u64,
    /// Exit after the first page that brings nothing new.
    #[arg(long)]
    exit_when_idle: bool,
    /// Bearer token, if the node requires one on the routes used.
    #[arg(long)]
    admin_token: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let follower = NodeClient::new(args.from.clone(), args.admin_token.clone())
        .and_then(|client| ChangeFollower::open(client, &args.state, &args.out));
    let mut follower = match follower {
        Ok(follower) => follower,
        Err(e) => {
            eprintln!("follow-changes: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "follow-changes: following {} after {:?}",
        args.from,
        follower.offset()
    );
    loop {
        match follower.step(args.limit, args.wait_ms).await {
            Ok(0) if args.exit_when_idle => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(Error::Api {
                status: 410, body, ..
            }) => {
                eprintln!("follow-changes: the saved offset is no longer retained: {body}");
                return ExitCode::from(3);
            }
            Err(e) if e.is_retryable() => {
                eprintln!("follow-changes: {e}; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => {
                eprintln!("follow-changes: {e}");
                return ExitCode::from(2);
            }
        }
    }
}
