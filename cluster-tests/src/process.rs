//! One real `orderq serve` process: finding the binary, spawning it with its log captured to a
//! file, and killing it with `SIGKILL` by pid; and one-shot `orderq` commands run to their end.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Environment variable naming the `orderq` binary to test.
pub const BINARY_ENV: &str = "ORDERQ_BIN";

/// How often [`NodeProcess::terminate`] looks whether the process has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How much of the end of a log file [`log_tail`] reads.
const TAIL_BYTES: u64 = 64 * 1024;

/// Runs `binary args...` to its end (a one-shot command such as `orderq restore`), without our
/// `ORDERQ_*` environment, appending the command line and its output to `log_path`; answers its
/// stdout, or [`Error::CommandFailed`] with its stderr. The child is killed if the caller stops
/// waiting (a test's time limit).
pub async fn run_to_end(binary: &Path, args: &[String], log_path: &Path) -> Result<String> {
    let command_line = format!("{} {}", binary.display(), args.join(" "));
    let mut command = tokio::process::Command::new(binary);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORDERQ_") {
            command.env_remove(key);
        }
    }
    let output = command.output().await.map_err(|source| Error::Io {
        context: format!("running {command_line}"),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let logged = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .and_then(|mut log| write!(log, "=== cluster-tests: {command_line}\n{stdout}{stderr}"));
    logged.map_err(|source| Error::Io {
        context: format!("writing {}", log_path.display()),
        source,
    })?;
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command: command_line,
            status: output.status.to_string(),
            stderr,
        });
    }
    Ok(stdout)
}

/// Finds the `orderq` binary: `$ORDERQ_BIN`, else `orderq` in the target directory this test
/// executable was built in (`target/debug/deps/t10-abc` → `target/debug/orderq`).
pub fn locate_binary() -> Result<PathBuf> {
    let path = match std::env::var_os(BINARY_ENV) {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().map_err(|source| Error::Io {
                context: "finding the test executable".to_owned(),
                source,
            })?;
            let profile_dir = exe
                .ancestors()
                .find(|dir| dir.file_name().is_some_and(|name| name == "deps"))
                .and_then(Path::parent)
                .or_else(|| exe.parent())
                .unwrap_or(Path::new("."));
            profile_dir.join("orderq")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::BinaryNotFound { path })
    }
}

/// A running (or exited, not yet reaped) `orderq` child process.
///
/// Dropping it kills it: a test that fails half-way must not leave nodes holding ports.
#[derive(Debug)]
pub struct NodeProcess {
    /// The node id, for messages.
    node_id: u64,
    /// Its pid, what `SIGKILL` is sent to.
    pid: libc::pid_t,
    /// The child handle, kept to reap it; behind a lock so liveness can be checked through `&self`.
    child: Mutex<Child>,
}

impl NodeProcess {
    /// Spawns `binary args...` with the extra environment `env`, appending its stdout and stderr
    /// to `log_path`.
    ///
    /// The child gets none of our `ORDERQ_*` environment (the flags say everything), and is
    /// asked to die with `SIGKILL` if the thread that spawned it dies first, so a test runner
    /// killed from outside leaves no orphan nodes behind.
    pub fn spawn(
        node_id: u64,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
        log_path: &Path,
    ) -> Result<Self> {
        let io = |context: String| move |source| Error::Io { context, source };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(io(format!("opening {}", log_path.display())))?;
        writeln!(
            log,
            "=== cluster-tests: {} {}",
            binary.display(),
            args.join(" ")
        )
        .map_err(io(format!("writing {}", log_path.display())))?;
        let stdout = log
            .try_clone()
            .map_err(io(format!("duplicating {}", log_path.display())))?;

        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ORDERQ_") {
                command.env_remove(key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        // SAFETY: the closure runs in the forked child before exec and only calls `prctl`,
        // which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(io(format!(
            "spawning node {node_id} ({})",
            binary.display()
        )))?;
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| Error::Usage(format!("pid {} does not fit pid_t", child.id())))?;
        Ok(NodeProcess {
            node_id,
            pid,
            child: Mutex::new(child),
        })
    }

    /// The process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// `Some(how it exited)` once the process is gone, `None` while it runs.
    pub fn exit_status(&self) -> Option<String> {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot tell: {e}")),
        }
    }

    /// Fails with [`Error::NodeExited`] (and the log tail from `log_path`) if the process is gone.
    pub fn ensure_running(&self, log_path: &Path) -> Result<()> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => Err(Error::NodeExited {
                node_id: self.node_id,
                status,
                log_tail: log_tail(log_path, 30),
            }),
        }
    }

    /// Sends `SIGTERM` (what systemd's stop sends) and waits up to `limit` for the process to
    /// exit on its own; answers how it exited and how long that took. A process still running
    /// at `limit` is killed, and that is [`Error::Timeout`].
    pub fn terminate(self, limit: Duration) -> Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        // SAFETY: as in `kill_and_reap`: our own unreaped child, no memory preconditions.
        if unsafe { libc::kill(self.pid, libc::SIGTERM) } == -1 {
            return Err(Error::Io {
                context: format!("kill -TERM node {} (pid {})", self.node_id, self.pid),
                source: std::io::Error::last_os_error(),
            });
        }
        loop {
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .try_wait()
                .map_err(|source| Error::Io {
                    context: format!("waiting for node {} (pid {})", self.node_id, self.pid),
                    source,
                })?;
            if let Some(status) = exited {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() >= limit {
                return Err(Error::Timeout {
                    what: format!("node {} to exit after SIGTERM", self.node_id),
                    waited: started.elapsed(),
                    last: "still running; killed".to_owned(),
                });
            }
            std::thread::sleep(EXIT_POLL_INTERVAL);
        }
    }

    /// Sends `SIGKILL` (what `kill -9` does: no shutdown code runs) and reaps the process.
    pub fn kill(self) -> Result<()> {
        self.kill_and_reap()
    }

    /// The body of [`NodeProcess::kill`], shared with `Drop`.
    fn kill_and_reap(&self) -> Result<()> {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        // SAFETY: `kill` has no memory-safety preconditions; the pid is our own unreaped
        // child, so it cannot have been recycled for another process.
        if unsafe { libc::kill(self.pid, libc::SIGKILL) } == -1 {
            let source = std::io::Error::last_os_error();
            if source.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::Io {
                    context: format!("kill -9 node {} (pid {})", self.node_id, self.pid),
                    source,
                });
            }
        }
        child.wait().map_err(|source| Error::Io {
            context: format!("reaping node {} (pid {})", self.node_id, self.pid),
            source,
        })?;
        Ok(())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Err(e) = self.kill_and_reap() {
            eprintln!("cluster-tests: {e}");
        }
    }
}

/// The last `lines` lines of the log at `path` (reading at most its last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
