//! `orderq admin ...`: the operator's command line over the admin API of any node.
//!
//! Each subcommand is one or two admin calls; the answer prints as aligned tables, or with
//! `--json` as the node's JSON, unchanged, for scripts. Failures print one line on stderr and
//! exit with a code per kind of failure ([`error::exit_code`]).
//!
//! # Layout
//! - this file: the arguments (clap) and what each subcommand calls.
//! - [`client`]: [`client::AdminClient`], the HTTP calls with the token.
//! - [`render`]: each answer as the tables a person reads.
//! - [`table`]: aligned columns.
//! - [`error`]: [`CliError`] and the exit codes.

pub mod client;
pub mod error;
pub mod render;
pub mod table;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use client::AdminClient;
pub use error::CliError;

/// The default node: the one `orderq serve` starts with no arguments.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// `orderq admin`: where to connect, how to print, and what to do.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Any node's API base URL.
    #[arg(long, global = true, env = "ORDERQ_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The admin token (or a client token with the `admin` scope).
    #[arg(
        long,
        global = true,
        env = "ORDERQ_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the node's JSON answer instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to show or do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The subcommands of `orderq admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Members and roles, leader, term, log and applied index, replication lag.
    Cluster,
    /// SKUs with their stock, a page at a time.
    Skus {
        /// Start after this SKU (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// SKUs per page (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Topics: head, retention floor, publish rate, subscriptions.
    Topics,
    /// Subscriptions: backlog, in flight, dead letters, oldest unacknowledged age, paused.
    Subs,
    /// A group's dead letters: list, redrive, purge.
    Dead {
        /// What to do with them.
        #[command(subcommand)]
        action: DeadAction,
    },
    /// An order's story: its changes, the messages it caused and each group's delivery.
    Trace {
        /// The order id.
        order_id: String,
        /// Go on from this change offset (the `next` of an incomplete trace).
        #[arg(long)]
        after: Option<u64>,
    },
    /// Timers: pending, next due, fired, firing lag.
    Timers,
    /// Builds a snapshot on the answering node now.
    Snapshot,
    /// Writes a consistent copy of the answering node's state to a new directory on its machine
    /// (the same as `orderq backup`; restore it with `orderq restore`).
    Backup {
        /// The new directory, by absolute path on the node's machine.
        #[arg(long)]
        dir: String,
    },
}

/// `orderq admin dead ...`.
#[derive(Debug, Subcommand)]
pub enum DeadAction {
    /// A page of a group's dead letters, with their attempts and last error.
    List {
        /// The consumer group.
        group: String,
        /// Only those whose key or payload contains this text (case-insensitive).
        #[arg(long)]
        q: Option<String>,
        /// Start after this dead letter id (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Dead letters per page.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Delivers dead letters again: the ids given, or all of the group's.
    Redrive {
        /// The consumer group.
        group: String,
        /// Dead letter ids; none redrives all.
        ids: Vec<String>,
    },
    /// Deletes dead letters for good: the ids given, or all with `--all`.
    Purge {
        /// The consumer group.
        group: String,
        /// Dead letter ids.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Purge every dead letter of the group.
        #[arg(long)]
        all: bool,
    },
}

/// Runs `orderq admin` and prints its answer: the process exit code.
pub fn main(args: AdminArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("orderq admin: starting the runtime: {e}");
            return error::exit_code::USAGE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(text) => {
            print!("{text}");
            error::exit_code::OK
        }
        Err(e) => {
            eprintln!("orderq admin: {e}");
            e.exit_code()
        }
    }
}

/// Makes the calls `args` asks for: what to print.
pub async fn run(args: &AdminArgs) -> Result<String, CliError> {
    let client = AdminClient::new(&args.url, args.token.clone())?;
    let (answer, human): (Value, fn(&Value) -> String) = match &args.command {
        AdminCommand::Cluster => (
            client.get(client.url(&["admin", "cluster"], &[])).await?,
            render::cluster,
        ),
        AdminCommand::Skus { after, limit } => {
            let query = [("after", after.clone()), ("limit", Some(limit.to_string()))];
            let url = client.url(&["admin", "skus"], &query);
            (client.get(url).await?, render::skus)
        }
        AdminCommand::Topics => (
            client.get(client.url(&["admin", "topics"], &[])).await?,
            render::topics,
        ),
        AdminCommand::Subs => (
            client
                .get(client.url(&["admin", "subscriptions"], &[]))
                .await?,
            render::subscriptions,
        ),
        AdminCommand::Dead { action } => dead(&client, action).await?,
        AdminCommand::Trace { order_id, after } => {
            let query = [("after", after.map(|a| a.to_string()))];
            let url = client.url(&["admin", "orders", order_id, "trace"], &query);
            (client.get(url).await?, render::trace)
        }
        AdminCommand::Timers => (
            client.get(client.url(&["admin", "timers"], &[])).await?,
            render::timers,
        ),
        AdminCommand::Snapshot => (
            client
                .post(client.url(&["admin", "snapshot"], &[]), json!({}))
                .await?,
            render::snapshot,
        ),
        AdminCommand::Backup { dir } => (
            client
                .post(client.url(&["admin", "backup"], &[]), json!({ "dir": dir }))
                .await?,
            render::backup,
        ),
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&answer).unwrap_or_else(|_| answer.to_string());
        text.push('\n');
        Ok(text)
    } else {
        Ok(human(&answer))
    }
}

/// `orderq admin dead ...`: the answer and how to show it.
async fn dead(
    client: &AdminClient,
    action: &DeadAction,
) -> Result<(Value, fn(&Value) -> String), CliError> {
    Ok(match action {
        DeadAction::List {
            group,
            q,
            after,
            limit,
        } => {
            let query = [
                ("q", q.clone()),
                ("after", after.clone()),
                ("limit", Some(limit.to_string())),
            ];
            (
                client
                    .get(client.url(&["admin", "subscriptions", group, "dead"], &query))
                    .await?,
                render::dead_letters,
            )
        }
        DeadAction::Redrive { group, ids } => (
            dead_write(client, group, "redrive", ids).await?,
            render::redriven,
        ),
        // `--all` comes with no ids (clap refuses both), and no ids means all.
        DeadAction::Purge { group, ids, .. } => (
            dead_write(client, group, "purge", ids).await?,
            render::purged,
        ),
    })
}

/// `POST /admin/subscriptions/{group}/dead/{verb}` with the chosen `ids`, or with `{}` (every
/// dead letter of the group) when there are none.
async fn dead_write(
    client: &AdminClient,
    group: &str,
    verb: &str,
    ids: &[String],
) -> Result<Value, CliError> {
    let body = if ids.is_empty() {
        json!({})
    } else {
        json!({ "ids": ids })
    };
    let url = client.url(&["admin", "subscriptions", group, "dead", verb], &[]);
    client.post(url, body).await
}
