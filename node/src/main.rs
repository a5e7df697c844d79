//! `orderq`: orders, stock and a durable queue in one replicated binary.

use clap::{Parser, Subcommand};
use node::config::{Config, ServeArgs};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// orderq: orders, stock and a durable message queue, replicated by Raft.
#[derive(Parser)]
#[command(name = "orderq", version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Subcommand)]
enum Command {
    /// Run a node. With no arguments: a single-node cluster in ./orderq-data on 127.0.0.1:8080.
    Serve(ServeArgs),
}

#[tokio::main]
async fn main() {
    // Arms the crash points named in `FAILPOINTS`; does nothing unless built with the
    // `failpoints` feature.
    let _failpoints = fail::FailScenario::setup();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    fail_fast_on_panic();
    let Cli {
        command: Command::Serve(args),
    } = Cli::parse();
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("orderq: {e}");
            std::process::exit(2);
        }
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    if let Err(e) = node::serve::run(config, stopped).await {
        eprintln!("orderq: {e}");
        std::process::exit(1);
    }
}

/// A panic anywhere means an invariant broke (openraft panics on a corrupted replication state):
/// the process exits at once instead of serving HTTP with a dead Raft core, so a supervisor
/// restarts it from its data.
fn fail_fast_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        eprintln!("orderq: panic; exiting so the node restarts from its data");
        std::process::exit(101);
    }));
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
