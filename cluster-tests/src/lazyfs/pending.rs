//! [`PendingNames`]: the name changes (creations, renames, links, unlinks) not yet durable, in
//! the order they were made, and replaying a prefix of them onto the backing directory.
//!
//! To ensure correctness:
//! - The backing directory's names always equal the running system's names as they were after
//!   some prefix of its name changes: changes are replayed only in order, and only from the start
//!   of the queue. Paths are recorded relative to the root as they were when the change was made,
//!   so each one is valid at its turn in the replay.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One change of names, with paths relative to the filesystem's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    /// A new, empty regular file (its data is made durable by its own fsync).
    Create {
        /// Where.
        path: PathBuf,
        /// Its inode, which gets the backing file when this is replayed.
        ino: u64,
        /// Its permission bits.
        perm: u16,
    },
    /// A new directory.
    Mkdir {
        /// Where.
        path: PathBuf,
        /// Its permission bits.
        perm: u16,
    },
    /// A new symbolic link.
    Symlink {
        /// Where.
        path: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
    /// A new name for an existing file.
    Link {
        /// The existing name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
    },
    /// A move, replacing whatever `to` named.
    Rename {
        /// The old name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
    },
    /// A file's or symlink's name removed.
    Unlink {
        /// The name.
        path: PathBuf,
    },
    /// An empty directory removed.
    Rmdir {
        /// The name.
        path: PathBuf,
    },
}

impl NameChange {
    /// Does this change to the backing directory `root`. A replayed creation answers the new
    /// backing file, opened for reading and writing.
    pub fn replay(&self, root: &Path) -> io::Result<Option<File>> {
        match self {
            NameChange::Create { path, perm, .. } => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(u32::from(*perm))
                    .open(root.join(path))?;
                return Ok(Some(file));
            }
            NameChange::Mkdir { path, perm } => std::fs::DirBuilder::new()
                .mode(u32::from(*perm))
                .create(root.join(path))?,
            NameChange::Symlink { path, target } => {
                std::os::unix::fs::symlink(target, root.join(path))?
            }
            NameChange::Link { from, to } => std::fs::hard_link(root.join(from), root.join(to))?,
            NameChange::Rename { from, to } => std::fs::rename(root.join(from), root.join(to))?,
            NameChange::Unlink { path } => std::fs::remove_file(root.join(path))?,
            NameChange::Rmdir { path } => std::fs::remove_dir(root.join(path))?,
        }
        Ok(None)
    }
}

/// A change waiting to become durable, with what makes it so.
#[derive(Debug)]
struct Pending {
    /// The change.
    change: NameChange,
    /// The directories (by inode) whose entries it changed: an fsync of any of them makes it
    /// durable.
    dirs: Vec<u64>,
}

/// The name changes not yet durable, oldest first.
#[derive(Debug, Default)]
pub struct PendingNames {
    /// The queue.
    queue: VecDeque<Pending>,
}

impl PendingNames {
    /// Records `change`, which changed the entries of the directories `dirs`.
    pub fn push(&mut self, change: NameChange, dirs: Vec<u64>) {
        self.queue.push_back(Pending { change, dirs });
    }

    /// How many changes, from the oldest, must be replayed for every change of directory `dir`
    /// to be durable (0: none pending).
    pub fn through_dir(&self, dir: u64) -> usize {
        self.queue
            .iter()
            .rposition(|p| p.dirs.contains(&dir))
            .map_or(0, |at| at + 1)
    }

    /// How many changes, from the oldest, must be replayed for the creation of inode `ino` to be
    /// durable (0: it is not pending).
    pub fn through_creation(&self, ino: u64) -> usize {
        self.queue
            .iter()
            .position(|p| matches!(p.change, NameChange::Create { ino: i, .. } if i == ino))
            .map_or(0, |at| at + 1)
    }

    /// Removes and answers the oldest `n` changes, to be replayed in order.
    pub fn take(&mut self, n: usize) -> Vec<NameChange> {
        self.queue
            .drain(..n.min(self.queue.len()))
            .map(|p| p.change)
            .collect()
    }

    /// How many changes wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn a_directory_fsync_makes_every_earlier_change_durable_and_no_later_one() {
        let mut pending = PendingNames::default();
        pending.push(
            NameChange::Mkdir {
                path: path("a"),
                perm: 0o755,
            },
            vec![1],
        );
        pending.push(
            NameChange::Create {
                path: path("a/f"),
                ino: 3,
                perm: 0o644,
            },
            vec![2],
        );
        pending.push(
            NameChange::Rename {
                from: path("a/f"),
                to: path("g"),
            },
            vec![2, 1],
        );
        pending.push(NameChange::Unlink { path: path("h") }, vec![4]);
        assert_eq!(pending.through_dir(2), 3);
        assert_eq!(pending.through_dir(1), 3);
        assert_eq!(pending.through_dir(9), 0);
        assert_eq!(pending.through_creation(3), 2);
        assert_eq!(pending.through_creation(7), 0);
        assert_eq!(pending.take(2).len(), 2);
        assert_eq!(pending.through_dir(2), 1);
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn replaying_changes_in_order_rebuilds_the_names() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        let changes = [
            NameChange::Mkdir {
                path: path("d"),
                perm: 0o755,
            },
            NameChange::Create {
                path: path("d/f"),
                ino: 2,
                perm: 0o644,
            },
            NameChange::Link {
                from: path("d/f"),
                to: path("l"),
            },
            NameChange::Rename {
                from: path("d/f"),
                to: path("g"),
            },
            NameChange::Symlink {
                path: path("s"),
                target: path("g"),
            },
            NameChange::Unlink { path: path("l") },
            NameChange::Rmdir { path: path("d") },
        ];
        for change in &changes {
            change.replay(root).expect("replay");
        }
        let mut names: Vec<String> = std::fs::read_dir(root)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["g", "s"]);
    }
}
