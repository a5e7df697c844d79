//! [`Inodes`]: every file, directory and symlink as the running system sees it, by inode number;
//! built from the backing directory at mount, then changed only in memory.
//!
//! To ensure correctness:
//! - A directory has exactly one parent and name (no hard links to directories), so its path
//!   from the root is its chain of names; the root is [`ROOT`].
//! - A node stays while it has a name or the kernel still holds a reference to it (`lookups`,
//!   counted per entry answered and given back by `forget`): an open, unlinked file keeps working.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType};

use super::errno::Errno;
use super::unsynced::FileData;

/// The root directory's inode number (FUSE's).
pub const ROOT: u64 = fuser::FUSE_ROOT_ID;

/// What a node is.
#[derive(Debug)]
pub enum Content {
    /// A regular file.
    File(FileData),
    /// A directory.
    Dir {
        /// Its entries by name.
        children: BTreeMap<OsString, u64>,
        /// Its parent's inode (the root's is itself).
        parent: u64,
        /// Its name in its parent (empty for the root).
        name: OsString,
    },
    /// A symbolic link.
    Symlink(PathBuf),
}

/// One inode.
#[derive(Debug)]
pub struct Node {
    /// What it is and holds.
    pub content: Content,
    /// Permission bits.
    pub perm: u16,
    /// Names it has (directories: 2 plus subdirectories, as usual).
    pub nlink: u32,
    /// References the kernel holds (entries answered, less those forgotten).
    pub lookups: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access.
    pub atime: SystemTime,
    /// Last change of contents.
    pub mtime: SystemTime,
    /// Last change of the inode.
    pub ctime: SystemTime,
}

impl Node {
    /// A new node owned by `uid`:`gid`, stamped now.
    pub fn new(content: Content, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        let nlink = if matches!(content, Content::Dir { .. }) {
            2
        } else {
            1
        };
        Node {
            content,
            perm,
            nlink,
            lookups: 0,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    /// Its kind, for FUSE.
    pub fn kind(&self) -> FileType {
        match self.content {
            Content::File(_) => FileType::RegularFile,
            Content::Dir { .. } => FileType::Directory,
            Content::Symlink(_) => FileType::Symlink,
        }
    }

    /// Its attributes, for FUSE.
    pub fn attr(&self, ino: u64) -> FileAttr {
        let size = match &self.content {
            Content::File(data) => data.size(),
            Content::Dir { children, .. } => children.len() as u64,
            Content::Symlink(target) => target.as_os_str().len() as u64,
        };
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind: self.kind(),
            perm: self.perm,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

/// The inode table.
#[derive(Debug)]
pub struct Inodes {
    /// Nodes by inode number.
    nodes: HashMap<u64, Node>,
    /// The next inode number to give out.
    next: u64,
}

impl Inodes {
    /// Reads the backing directory `root` whole: every directory and symlink, and every regular
    /// file opened for reading and writing (hard links share one node).
    pub fn load(root: &Path) -> io::Result<Inodes> {
        let meta = std::fs::metadata(root)?;
        let mut inodes = Inodes {
            nodes: HashMap::new(),
            next: ROOT + 1,
        };
        let mut node = Node::new(
            Content::Dir {
                children: BTreeMap::new(),
                parent: ROOT,
                name: OsString::new(),
            },
            perm_of(&meta),
            meta.uid(),
            meta.gid(),
        );
        stamp(&mut node, &meta);
        inodes.nodes.insert(ROOT, node);
        let mut seen = HashMap::new();
        inodes.load_dir(root, ROOT, &mut seen)?;
        Ok(inodes)
    }

    /// Adds the entries of backing directory `dir` under node `parent`, recursively.
    fn load_dir(
        &mut self,
        dir: &Path,
        parent: u64,
        seen: &mut HashMap<(u64, u64), u64>,
    ) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let name = entry.file_name();
            if meta.is_file() {
                if let Some(&ino) = seen.get(&(meta.dev(), meta.ino())) {
                    self.get_mut(ino).map_err(errno_io)?.nlink += 1;
                    self.add_child(parent, name, ino)?;
                    continue;
                }
            }
            let content = if meta.is_dir() {
                Content::Dir {
                    children: BTreeMap::new(),
                    parent,
                    name: name.clone(),
                }
            } else if meta.is_symlink() {
                Content::Symlink(std::fs::read_link(&path)?)
            } else if meta.is_file() {
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                Content::File(FileData::durable(file, meta.len()))
            } else {
                // Sockets, fifos and devices have no place in a data directory.
                continue;
            };
            let mut node = Node::new(content, perm_of(&meta), meta.uid(), meta.gid());
            stamp(&mut node, &meta);
            let is_dir = meta.is_dir();
            let ino = self.insert(node);
            if meta.is_file() {
                seen.insert((meta.dev(), meta.ino()), ino);
            }
            self.add_child(parent, name, ino)?;
            if is_dir {
                self.get_mut(parent).map_err(errno_io)?.nlink += 1;
                self.load_dir(&path, ino, seen)?;
            }
        }
        Ok(())
    }

    /// Adds `node`; answers its inode number.
    pub fn insert(&mut self, node: Node) -> u64 {
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// Node `ino`.
    pub fn get(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::NOENT)
    }

    /// Node `ino`, to change.
    pub fn get_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::NOENT)
    }

    /// Regular file `ino`'s contents.
    pub fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        match &mut self.get_mut(ino)?.content {
            Content::File(data) => Ok(data),
            Content::Dir { .. } => Err(Errno::ISDIR),
            Content::Symlink(_) => Err(Errno::INVAL),
        }
    }

    /// Directory `ino`'s entries.
    pub fn children(&self, ino: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.get(ino)?.content {
            Content::Dir { children, .. } => Ok(children),
            _ => Err(Errno::NOTDIR),
        }
    }

    /// Directory `ino`'s entries, to change.
    fn children_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.get_mut(ino)?.content {
            Content::Dir { children, .. } => Ok(children),
            _ => Err(Errno::NOTDIR),
        }
    }

    /// The inode `name` names in directory `parent`.
    pub fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.children(parent)?
            .get(name)
            .copied()
            .ok_or(Errno::NOENT)
    }

    /// Enters `ino` as `name` in directory `parent` (replacing nothing: the caller removed any
    /// previous entry).
    pub fn add_child(&mut self, parent: u64, name: OsString, ino: u64) -> io::Result<()> {
        self.children_mut(parent)
            .map_err(errno_io)?
            .insert(name, ino);
        Ok(())
    }

    /// Removes entry `name` from directory `parent`; answers the inode it named.
    pub fn remove_child(&mut self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.children_mut(parent)?.remove(name).ok_or(Errno::NOENT)
    }

    /// Path of directory `dir` relative to the root (empty for the root).
    pub fn dir_path(&self, mut dir: u64) -> Result<PathBuf, Errno> {
        let mut names = Vec::new();
        while dir != ROOT {
            match &self.get(dir)?.content {
                Content::Dir { parent, name, .. } => {
                    names.push(name.clone());
                    dir = *parent;
                }
                _ => return Err(Errno::NOTDIR),
            }
        }
        Ok(names.iter().rev().collect())
    }

    /// Path of entry `name` in directory `parent`, relative to the root.
    pub fn entry_path(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.dir_path(parent)?.join(name))
    }

    /// Whether directory `ancestor` is `dir` or contains it at any depth.
    pub fn is_within(&self, mut dir: u64, ancestor: u64) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            match self.get(dir).map(|n| &n.content) {
                Ok(Content::Dir { parent, .. }) if dir != ROOT => dir = *parent,
                _ => return false,
            }
        }
    }

    /// Drops node `ino` if it has no name left and the kernel holds no reference to it.
    pub fn drop_if_unused(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(node) = self.nodes.get(&ino) {
            let unnamed = match node.content {
                Content::Dir { .. } => node.nlink < 2,
                _ => node.nlink == 0,
            };
            if unnamed && node.lookups == 0 {
                self.nodes.remove(&ino);
            }
        }
    }
}

/// The permission bits of `meta`.
fn perm_of(meta: &std::fs::Metadata) -> u16 {
    (meta.permissions().mode() & 0o7777) as u16
}

/// Copies the times of `meta` onto `node`.
fn stamp(node: &mut Node, meta: &std::fs::Metadata) {
    let at = |secs: i64, nanos: i64| {
        UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
    };
    node.atime = at(meta.atime(), meta.atime_nsec());
    node.mtime = at(meta.mtime(), meta.mtime_nsec());
    node.ctime = at(meta.ctime(), meta.ctime_nsec());
}

/// An [`Errno`] as an I/O error, while loading.
fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.0)
}
