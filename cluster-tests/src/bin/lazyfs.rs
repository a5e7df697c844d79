//! Mounts the power-loss filesystem ([`cluster::lazyfs`]) at a mount point over a backing
//! directory, prints `mounted` on stdout once the mount is in place, and serves until unmounted.
//!
//! Killing this process is the power cut: whatever was not fsynced lived only in its memory.
//! Afterwards unmount (`fusermount3 -u MOUNTPOINT`, or `umount` as root) and mount again: the
//! backing directory holds only what was made durable.
//!
//! `lazyfs --backing /tmp/durable /tmp/mnt`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cluster::lazyfs::fs::LazyFs;
use fuser::MountOption;

/// Flags.
#[derive(Debug, Parser)]
#[command(about = "A FUSE filesystem that loses what was not fsynced when its process is killed")]
struct Args {
    /// The directory holding what is durable (created if missing).
    #[arg(long)]
    backing: PathBuf,
    /// Where to mount (an existing, empty directory).
    mountpoint: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lazyfs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Mounts, announces it, and serves until the mount goes away.
fn serve(args: &Args) -> std::io::Result<()> {
    raise_open_file_limit();
    std::fs::create_dir_all(&args.backing)?;
    let fs = LazyFs::open(&args.backing)?;
    let options = [
        MountOption::FSName("lazyfs".to_owned()),
        MountOption::Subtype("lazyfs".to_owned()),
    ];
    let mut session = fuser::Session::new(fs, &args.mountpoint, &options)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "mounted")?;
    stdout.flush()?;
    session.run()
}

/// Every regular file keeps its backing file open, so a data directory needs more than the
/// usual soft limit of descriptors: raise it to the hard limit.
fn raise_open_file_limit() {
    // SAFETY: `getrlimit`/`setrlimit` only read and write the struct we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
