//! [`LazyMounts`]: node data directories on the power-loss filesystem ([`crate::lazyfs`]), so
//! the harness can cut a node's power: whatever the node wrote and did not fsync is gone.
//!
//! Node `N`'s data directory `node-N/data` is the mount point; what is durable lives in
//! `node-N/data.durable`, written by one `lazyfs` process per node. A power cut kills that
//! process with `SIGKILL` (its memory, the unsynced writes and name changes, is lost on the
//! spot, so nothing can become durable after the cut), then the node, and unmounts; the restart
//! mounts the backing directory again. Mounting needs FUSE (`/dev/fuse`; root, or `fusermount3`
//! from Debian's `fuse3`). A failing run's data is what survived, in `data.durable`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{Error, Result};
use crate::process::{locate_binary, log_tail};

/// Environment variable naming the `lazyfs` binary; by default it is the one beside `orderq`.
pub const LAZYFS_ENV: &str = "ORDERQ_LAZYFS_BIN";

/// Finds the `lazyfs` binary: `$ORDERQ_LAZYFS_BIN`, else `lazyfs` beside the `orderq` binary
/// (`cargo build --workspace --bins` builds both into one directory).
pub fn locate_lazyfs() -> Result<PathBuf> {
    let path = match std::env::var_os(LAZYFS_ENV) {
        Some(path) => PathBuf::from(path),
        None => locate_binary()?.with_file_name("lazyfs"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::BinaryNotFound { path })
    }
}

/// One node's mount.
#[derive(Debug)]
struct LazyMount {
    /// The mount point: the node's data directory.
    mount: PathBuf,
    /// What is durable.
    backing: PathBuf,
    /// Where the filesystem's own messages go.
    log: PathBuf,
    /// The running `lazyfs`, until the power is cut.
    process: Option<Child>,
}

/// The power-loss mounts of a run, by node id. Dropping it cuts every power and unmounts.
#[derive(Debug)]
pub struct LazyMounts {
    /// The `lazyfs` binary.
    binary: PathBuf,
    /// The mounts.
    mounts: BTreeMap<u64, LazyMount>,
}

impl LazyMounts {
    /// No mounts yet, served by the `lazyfs` binary `binary`.
    pub fn new(binary: PathBuf) -> Self {
        LazyMounts {
            binary,
            mounts: BTreeMap::new(),
        }
    }

    /// Mounts the power-loss filesystem on node `id`'s data directory `data` (which must not be
    /// in use), with the durable files in `data.durable` beside it.
    pub fn mount(&mut self, id: u64, data: &Path) -> Result<()> {
        let backing = data.with_extension("durable");
        for dir in [data, &backing] {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let mut mount = LazyMount {
            mount: data.to_owned(),
            backing,
            log: data.with_extension("lazyfs.log"),
            process: None,
        };
        mount.process = Some(self.spawn(id, &mount)?);
        self.mounts.insert(id, mount);
        Ok(())
    }

    /// Cuts node `id`'s power: kills its filesystem, so whatever was not fsynced is lost. The
    /// node itself must be killed next (its file operations fail from now on), then
    /// [`LazyMounts::restore`] before it restarts.
    pub fn cut(&mut self, id: u64) -> Result<()> {
        let mount = self
            .mounts
            .get_mut(&id)
            .ok_or_else(|| Error::Usage(format!("node {id} is not on the power-loss fs")))?;
        if let Some(process) = mount.process.take() {
            kill(process, id)?;
        }
        Ok(())
    }

    /// Brings node `id`'s power back (the node must be dead): unmounts what is left of the old
    /// mount and mounts the backing directory again, holding only what was durable.
    pub fn restore(&mut self, id: u64) -> Result<()> {
        let process = {
            let mount = self
                .mounts
                .get(&id)
                .ok_or_else(|| Error::Usage(format!("node {id} is not on the power-loss fs")))?;
            if mount.process.is_some() {
                return Err(Error::Usage(format!("node {id}'s power is on")));
            }
            unmount(&mount.mount)?;
            self.spawn(id, mount)?
        };
        if let Some(mount) = self.mounts.get_mut(&id) {
            mount.process = Some(process);
        }
        Ok(())
    }

    /// Cuts every power and unmounts (the nodes must be gone); answers what went wrong.
    pub fn unmount_all(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, mut mount) in std::mem::take(&mut self.mounts) {
            if let Some(process) = mount.process.take() {
                if let Err(e) = kill(process, id) {
                    problems.push(e.to_string());
                }
            }
            if let Err(e) = unmount(&mount.mount) {
                problems.push(format!("unmounting node {id}'s data: {e}"));
            }
        }
        problems
    }

    /// Starts `lazyfs` for `mount` and waits until it says the mount is in place.
    fn spawn(&self, id: u64, mount: &LazyMount) -> Result<Child> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&mount.log)
            .map_err(io(format!("opening {}", mount.log.display())))?;
        writeln!(log, "=== mount {}", mount.mount.display())
            .map_err(io(format!("writing {}", mount.log.display())))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--backing")
            .arg(&mount.backing)
            .arg(&mount.mount)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
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
        let mut child = command.spawn().map_err(io(format!(
            "spawning {} for node {id}",
            self.binary.display()
        )))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            // `lazyfs` prints one line once mounted, or exits (closing its stdout) if it cannot.
            BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(io(format!("reading node {id}'s lazyfs")))?;
        }
        if line.trim() != "mounted" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Usage(format!(
                "lazyfs for node {id} did not mount {}: {}",
                mount.mount.display(),
                log_tail(&mount.log, 10)
            )));
        }
        Ok(child)
    }
}

impl Drop for LazyMounts {
    fn drop(&mut self) {
        for problem in self.unmount_all() {
            eprintln!("chaos: {problem}");
        }
    }
}

/// `SIGKILL`s node `id`'s filesystem and reaps it.
fn kill(mut process: Child, id: u64) -> Result<()> {
    process
        .kill()
        .map_err(io(format!("kill -9 node {id}'s lazyfs")))?;
    process
        .wait()
        .map_err(io(format!("reaping node {id}'s lazyfs")))?;
    Ok(())
}

/// Detaches the (dead) FUSE mount at `path`: `umount2` as root, else `fusermount3 -u -z`.
fn unmount(path: &Path) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{} contains a NUL", path.display())))?;
    // SAFETY: `umount2` reads the NUL-terminated path only.
    if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let os_error = std::io::Error::last_os_error();
    if os_error.raw_os_error() == Some(libc::EINVAL) {
        // Not a mount point (any more): nothing to detach.
        return Ok(());
    }
    let output = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(path)
        .output()
        .map_err(io("running fusermount3".to_owned()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "unmounting {}: {os_error}; fusermount3: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Maps an OS error with context.
fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}
