//! `orderq`: orders, stock and a durable queue in one replicated binary.

use clap::{CommandFactory, Parser, Subcommand};
use node::admin_cli::AdminArgs;
use node::backup::{BackupArgs, RestoreArgs};
use node::config::{Config, ServeArgs};
use node::logs::{self, LogFormat};
use tokio::sync::watch;

/// Every Rust allocation goes through jemalloc (as in TiKV). Under load a node allocates for
/// each request, command and record, and glibc's malloc spent 10-12% of a node's CPU there (perf,
/// create under 64 clients), mostly outside its per-thread cache. Beside etcd in the same runs,
/// jemalloc took CPU per order from 1.27x etcd's to 1.14x (three pairs against six) and per
/// publish from 2.45x NATS's to 2.34x; mimalloc did as well on orders but worse on publishes
/// (2.63x). RocksDB's own C++ allocations are not affected.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// orderq: orders, stock and a durable message queue, replicated by Raft.
#[derive(Parser)]
#[command(name = "orderq", version, about)]
struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one object per line,
    /// fields as keys) for a log pipeline.
    #[arg(
        long,
        global = true,
        env = "ORDERQ_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Subcommand)]
enum Command {
    /// Run a node. With no arguments: a single-node cluster in ./orderq-data on 127.0.0.1:8080.
    Serve(ServeArgs),
    /// Back up a running node: a consistent copy of its state into a new directory on its
    /// machine (`POST /admin/backup`).
    Backup(BackupArgs),
    /// Seed the empty data directory of a node of a new cluster from a backup, offline. Give the
    /// node's configuration as to `serve`; seed every voter from the same backup, then start them.
    Restore(RestoreArgs),
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
    let Cli {
        log_format,
        command,
    } = Cli::parse();
    let args = match command {
        Command::Serve(args) => args,
        Command::Backup(args) => {
            logs::init(log_format);
            exit_now(one_shot(node::backup::backup(&args)))
        }
        Command::Restore(args) => {
            logs::init(log_format);
            exit_now(one_shot(node::backup::restore(&args)))
        }
        Command::Admin(args) => std::process::exit(node::admin_cli::main(args)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "orderq", &mut std::io::stdout());
            return;
        }
    };
    logs::init(log_format);
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
            exit_now(1);
        }
    };
    let code = core.block_on(run(args, api.handle().clone()));
    api.shutdown_timeout(std::time::Duration::from_secs(1));
    // Dropping the core runtime's tasks releases the database, which closes with its last handle.
    core.shutdown_timeout(std::time::Duration::from_secs(2));
    exit_now(code);
}

/// Ends the process without running C++ static destructors: RocksDB's would tear down its
/// environment under a background flush or compaction still running (the process then aborts
/// with "pthread lock: Invalid argument" instead of exiting 0). Nothing is lost by skipping them:
/// every write was handed to the OS, and the Raft log, synced before it was acknowledged, replays
/// whatever the state had not flushed.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    logs::flush();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; no Rust state is used after it.
    unsafe { libc::_exit(code) }
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
    fail_fast_on_panic();
    // A bad configuration, or one that would leave a reachable node unprotected, exits 2 (which
    // the systemd unit does not restart).
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("orderq: {e}");
            exit_now(2);
        }
    };
    if let Err(e) = node::exposure::check(&config) {
        eprintln!("orderq: {e}");
        exit_now(2);
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
        exit_if_stop_hangs();
    });
    match node::serve::run(config, api, stopped).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("orderq: {e}");
            1
        }
    }
}

/// Runs a one-shot command (`backup`, `restore`) on a runtime of its own and reports it.
fn one_shot(
    command: impl std::future::Future<Output = Result<String, node::backup::BackupCliError>>,
) -> i32 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => report(runtime.block_on(command)),
        Err(e) => {
            eprintln!("orderq: starting a runtime: {e}");
            1
        }
    }
}

/// Prints what a one-shot command did, or why it failed; answers the exit status.
fn report(done: Result<String, node::backup::BackupCliError>) -> i32 {
    match done {
        Ok(said) => {
            println!("{said}");
            0
        }
        Err(e) => {
            eprintln!("orderq: {e}");
            e.exit_code()
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
        exit_now(101);
    }));
}

/// Longest a stop may take before the process exits anyway: under the 5 s the contract allows
/// (and far under the systemd unit's `TimeoutStopSec`), so a stop never ends in `SIGKILL`.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_millis(4500);

/// Exits with status 1 if the drain has not finished by [`STOP_DEADLINE`]. A plain thread, so a
/// stuck runtime cannot hold it up. Everything acknowledged is already durable (the log is synced
/// before any 2xx), so exiting here loses nothing; status 1 says the stop was not clean.
fn exit_if_stop_hangs() {
    std::thread::spawn(|| {
        std::thread::sleep(STOP_DEADLINE);
        eprintln!("orderq: the stop did not finish within {STOP_DEADLINE:?}; exiting");
        exit_now(1);
    });
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
