//! `orderq`: orders, stock and a durable queue in one replicated binary.

use clap::{CommandFactory, Parser, Subcommand};
use node::admin_cli::AdminArgs;
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
    /// Look at a running cluster and act on it through any node's admin API.
    Admin(AdminArgs),
    /// Print shell completions for orderq (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Worker threads of each of the node's two runtimes.
const WORKER_THREADS: usize = 2;
/// How much lower the API threads' scheduling priority is than the core's (a `nice` increment).
const API_NICENESS: libc::c_int = 5;

/// Two runtimes, so that client work cannot starve Raft: the core runtime runs openraft, the log
/// and the state machine, the peer port, the batcher and the leader services; the API runtime
/// serves HTTP at a lower scheduling priority. A leader saturated by clients (a flash sale)
/// keeps sending heartbeats and syncing its log, and keeps its office.
fn main() {
    let args = match Cli::parse().command {
        Command::Serve(args) => args,
        Command::Admin(args) => std::process::exit(node::admin_cli::main(args)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "orderq", &mut std::io::stdout());
            return;
        }
    };
    let core = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("orderq-core")
        .enable_all()
        .build();
    let api = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("orderq-api")
        .on_thread_start(lower_priority)
        .enable_all()
        .build();
    let (core, api) = match (core, api) {
        (Ok(core), Ok(api)) => (core, api),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("orderq: starting the runtimes: {e}");
            std::process::exit(1);
        }
    };
    let code = core.block_on(run(args, api.handle().clone()));
    api.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

/// Lowers the calling thread's scheduling priority (on Linux, `setpriority` of a thread id
/// changes that thread alone). Failing to is harmless: the thread keeps the normal priority.
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, API_NICENESS);
    }
}

async fn run(args: ServeArgs, api: tokio::runtime::Handle) -> i32 {
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
    // A bad configuration, or one that would leave a reachable node unprotected, exits 2 (which
    // the systemd unit does not restart).
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("orderq: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = node::exposure::check(&config) {
        eprintln!("orderq: {e}");
        std::process::exit(2);
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    match node::serve::run(config, api, stopped).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("orderq: {e}");
            1
        }
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
