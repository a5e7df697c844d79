//! A filesystem that forgets what was not made durable: the chaos harness's power cut.
//!
//! `kill -9` keeps the operating system's page cache, so a node that acknowledges writes it never
//! synced survives every kill. Mounted over a node's data directory, this FUSE filesystem (the
//! `lazyfs` binary, after LazyFS) keeps everything not yet durable in its own memory and writes
//! it to a backing directory only when the program asks for durability. Killing the filesystem's
//! process is the power cut: what was only in its memory is gone, and the next mount of the
//! backing directory shows exactly what had been made durable.
//!
//! # What is durable
//!
//! - **File data** (writes, truncations, `fallocate`) is durable once `fsync` or `fdatasync` of
//!   that file returns. Closing a file makes nothing durable, as on a real disk.
//! - **Names** (creating a file or directory, a symlink or hard link, renames, unlinks, rmdirs)
//!   are durable once an fsync of the directory they changed returns. Like a journaling
//!   filesystem's metadata journal, names become durable in the order they were changed: an
//!   fsync of a directory also makes every earlier name change durable.
//! - **A new file's own name** is also made durable by an fsync of the file itself (with every
//!   earlier name change), as ext4 does for a newly created inode; its later renames are not.
//! - Modes and times are kept in memory only (orderq and RocksDB depend on neither).
//!
//! An unmount is a power cut too: nothing is written back. The backing directory's own writes
//! are not synced to the real disk: the faults simulated are this filesystem's, not the
//! machine's.
//!
//! # Layout
//!
//! - [`unsynced`]: one file's contents: the backing file as last synced, and the pages written
//!   since, in memory.
//! - [`pending`]: the name changes not yet durable, in order, and replaying them onto the backing
//!   directory.
//! - [`inodes`]: the files and directories as the running system sees them, read from the backing
//!   directory at mount.
//! - [`fs`]: the FUSE operations ([`fs::LazyFs`]), built on the three above.
//! - [`errno`]: the error a FUSE operation answers.

pub mod errno;
pub mod fs;
pub mod inodes;
pub mod pending;
pub mod unsynced;
