//! [`SmallDisks`]: node data directories moved onto small tmpfs mounts that the harness fills
//! up and frees again, for the disk-full fault.
//!
//! Needs root (it runs `mount -t tmpfs`); the fault is opt-in (`--faults disk-full`). A node's
//! data moves onto its tmpfs the first time the fault hits it (the node is killed, its files
//! copied, the node restarted) and stays there for the rest of the run; the mounts are removed
//! when the run ends, after the nodes are gone.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Room a tmpfs gets beyond the data copied onto it, before the filler takes it away.
const HEADROOM_BYTES: u64 = 256 << 20;

/// Space left free by the filler: less than one RocksDB write batch with its WAL record.
const LEFT_FREE_BYTES: u64 = 64 << 10;

/// Tries at filling a disk that the node is still writing to.
const FILL_ATTEMPTS: u64 = 16;

/// One node's tmpfs.
#[derive(Debug)]
struct SmallDisk {
    /// The mount point: the node's data directory.
    mount: PathBuf,
    /// The file that takes up the free space while the disk is "full".
    filler: PathBuf,
}

/// The tmpfs mounts of a run, by node id.
#[derive(Debug, Default)]
pub struct SmallDisks {
    /// Nodes whose data lives on a tmpfs.
    disks: BTreeMap<u64, SmallDisk>,
}

impl SmallDisks {
    /// Whether node `id`'s data is on a tmpfs already.
    pub fn has(&self, id: u64) -> bool {
        self.disks.contains_key(&id)
    }

    /// Moves the (stopped) node `id`'s data directory `data` onto a new tmpfs of the data's size
    /// plus headroom.
    pub fn adopt(&mut self, id: u64, data: &Path) -> Result<()> {
        let original = data.with_extension("before-tmpfs");
        std::fs::rename(data, &original).map_err(io(format!("moving {}", data.display())))?;
        std::fs::create_dir(data).map_err(io(format!("creating {}", data.display())))?;
        let used = du_bytes(&original)?;
        let size_mib = (used + HEADROOM_BYTES) >> 20;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m"),
                "tmpfs",
                &display(data),
            ],
        )?;
        run(
            "cp",
            &["-a", &format!("{}/.", display(&original)), &display(data)],
        )?;
        std::fs::remove_dir_all(&original)
            .map_err(io(format!("removing {}", original.display())))?;
        self.disks.insert(
            id,
            SmallDisk {
                mount: data.to_owned(),
                filler: data.join("chaos-filler"),
            },
        );
        Ok(())
    }

    /// Fills node `id`'s tmpfs until only a few KiB are free. The node keeps writing
    /// meanwhile, so a filler that no longer fits is retried a little smaller.
    pub fn fill(&self, id: u64) -> Result<()> {
        let disk = self.disk(id)?;
        let mut last = None;
        for attempt in 0..FILL_ATTEMPTS {
            let free = free_bytes(&disk.mount)?;
            let len = free.saturating_sub(LEFT_FREE_BYTES + (attempt << 20));
            match run(
                "fallocate",
                &["-l", &len.to_string(), &display(&disk.filler)],
            ) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Usage("filling the tmpfs".to_owned())))
    }

    /// Frees node `id`'s tmpfs again, and grows it to the data's present size plus headroom:
    /// the data keeps growing over a long run, and a disk still full after healing would only
    /// test the same thing again.
    pub fn free(&self, id: u64) -> Result<()> {
        let disk = self.disk(id)?;
        match std::fs::remove_file(&disk.filler) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    context: format!("removing {}", disk.filler.display()),
                    source,
                })
            }
        }
        let size_mib = (du_bytes(&disk.mount)? + HEADROOM_BYTES) >> 20;
        run(
            "mount",
            &[
                "-o",
                &format!("remount,size={size_mib}m"),
                &display(&disk.mount),
            ],
        )
    }

    /// Unmounts every tmpfs (the nodes must be gone); with `keep`, copies each node's data
    /// first to `data-from-tmpfs` beside it.
    pub fn unmount_all(&mut self, keep: bool) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, disk) in std::mem::take(&mut self.disks) {
            if keep {
                let kept = disk.mount.with_extension("from-tmpfs");
                if let Err(e) = run("cp", &["-a", &display(&disk.mount), &display(&kept)]) {
                    problems.push(format!("keeping node {id}'s data: {e}"));
                }
            }
            if let Err(e) = run("umount", &[&display(&disk.mount)]) {
                problems.push(format!("unmounting node {id}'s tmpfs: {e}"));
            }
        }
        problems
    }

    /// Node `id`'s disk, or a usage error.
    fn disk(&self, id: u64) -> Result<&SmallDisk> {
        self.disks
            .get(&id)
            .ok_or_else(|| Error::Usage(format!("node {id} has no tmpfs")))
    }
}

/// Bytes free to an unprivileged writer on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{} contains a NUL", path.display())))?;
    // SAFETY: `statvfs` only writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(Error::Io {
            context: format!("statvfs {}", path.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes used by the files under `dir`.
fn du_bytes(dir: &Path) -> Result<u64> {
    let output = Command::new("du")
        .args(["-sb", &display(dir)])
        .output()
        .map_err(io("running du".to_owned()))?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Usage(format!("du {} answered nothing usable", dir.display())))
}

/// Runs `program args...`, failing with its stderr unless it succeeds.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(io(format!("running {program}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A path as an argument.
fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Maps an OS error with context.
fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}
