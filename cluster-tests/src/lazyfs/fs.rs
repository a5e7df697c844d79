//! [`LazyFs`]: the FUSE operations of the power-loss filesystem. Every operation changes the
//! in-memory view ([`Inodes`]); name changes queue in [`PendingNames`] and file data in each
//! file's pages until an fsync makes them durable on the backing directory.
//!
//! To ensure correctness:
//! - `fsync` and `fsyncdir` are implemented: a FUSE filesystem that answers `ENOSYS` to them
//!   makes the kernel treat every later fsync as done, and nothing would ever become durable.
//! - An fsync answers success only after what it covers is on the backing directory; a failed
//!   replay answers `EIO`.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};

use super::errno::Errno;
use super::inodes::{Content, Inodes, Node, ROOT};
use super::pending::{NameChange, PendingNames};
use super::unsynced::FileData;

/// How long the kernel may cache attributes and names. Every change goes through this
/// filesystem, so the cache cannot go stale; the power cut ends the mount and its cache.
const TTL: Duration = Duration::from_secs(1);

/// The power-loss filesystem over one backing directory.
#[derive(Debug)]
pub struct LazyFs {
    /// The backing directory: what is durable.
    backing: PathBuf,
    /// The running system's view.
    inodes: Inodes,
    /// Name changes not yet durable.
    pending: PendingNames,
}

impl LazyFs {
    /// The filesystem over `backing`, which holds what survived the last power cut.
    pub fn open(backing: &Path) -> std::io::Result<LazyFs> {
        Ok(LazyFs {
            backing: backing.to_owned(),
            inodes: Inodes::load(backing)?,
            pending: PendingNames::default(),
        })
    }

    /// Answers the attributes of `ino` for a new kernel reference to it (an entry reply).
    fn entry(&mut self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.inodes.get_mut(ino)?;
        node.lookups += 1;
        Ok(node.attr(ino))
    }

    /// Looks `name` up in `parent`.
    fn lookup_entry(&mut self, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let ino = self.inodes.child(parent, name)?;
        self.entry(ino)
    }

    /// Creates `name` in `parent` holding `content`, queues the name change `change` (given
    /// the new inode number) and answers the entry.
    fn make(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        content: Content,
        perm: u16,
        change: impl FnOnce(PathBuf, u64) -> NameChange,
    ) -> Result<FileAttr, Errno> {
        if self.inodes.children(parent)?.contains_key(name) {
            return Err(Errno::EXIST);
        }
        let path = self.inodes.entry_path(parent, name)?;
        let is_dir = matches!(content, Content::Dir { .. });
        let ino = self
            .inodes
            .insert(Node::new(content, perm, req.uid(), req.gid()));
        self.inodes.add_child(parent, name.to_owned(), ino)?;
        let dir = self.inodes.get_mut(parent)?;
        if is_dir {
            dir.nlink += 1;
        }
        touch(dir);
        self.pending.push(change(path, ino), vec![parent]);
        self.entry(ino)
    }

    /// Creates the empty regular file `name` in `parent` with the permission bits of `mode`
    /// (the umask already applied): what `mknod` of a regular file and `create` both do.
    fn make_file(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> Result<FileAttr, Errno> {
        let perm = (mode & 0o7777) as u16;
        self.make(
            req,
            parent,
            name,
            Content::File(FileData::created()),
            perm,
            |path, ino| NameChange::Create { path, ino, perm },
        )
    }

    /// Removes `name` from `parent`: a file or symlink (`rmdir` false) or an empty directory.
    fn remove(&mut self, parent: u64, name: &OsStr, rmdir: bool) -> Result<(), Errno> {
        let ino = self.inodes.child(parent, name)?;
        let is_dir = matches!(self.inodes.get(ino)?.content, Content::Dir { .. });
        match (rmdir, is_dir) {
            (false, true) => return Err(Errno::ISDIR),
            (true, false) => return Err(Errno::NOTDIR),
            (true, true) if !self.inodes.children(ino)?.is_empty() => return Err(Errno::NOTEMPTY),
            _ => {}
        }
        let path = self.inodes.entry_path(parent, name)?;
        self.inodes.remove_child(parent, name)?;
        self.unname(ino, parent)?;
        touch(self.inodes.get_mut(parent)?);
        let change = if rmdir {
            NameChange::Rmdir { path }
        } else {
            NameChange::Unlink { path }
        };
        self.pending.push(change, vec![parent]);
        self.inodes.drop_if_unused(ino);
        Ok(())
    }

    /// Counts one name of `ino` (in `parent`) gone.
    fn unname(&mut self, ino: u64, parent: u64) -> Result<(), Errno> {
        let node = self.inodes.get_mut(ino)?;
        node.ctime = SystemTime::now();
        if matches!(node.content, Content::Dir { .. }) {
            node.nlink = 0;
            self.inodes.get_mut(parent)?.nlink -= 1;
        } else {
            node.nlink = node.nlink.saturating_sub(1);
        }
        Ok(())
    }

    /// Moves `name` in `parent` to `newname` in `newparent`, replacing what was there.
    fn rename_entry(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<(), Errno> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(Errno::INVAL);
        }
        let ino = self.inodes.child(parent, name)?;
        let is_dir = matches!(self.inodes.get(ino)?.content, Content::Dir { .. });
        if is_dir && self.inodes.is_within(newparent, ino) {
            return Err(Errno::INVAL);
        }
        let replaced = match self.inodes.child(newparent, newname) {
            Ok(target) if target == ino => return Ok(()),
            Ok(_) if flags & libc::RENAME_NOREPLACE != 0 => return Err(Errno::EXIST),
            Ok(target) => Some(target),
            Err(_) => None,
        };
        if let Some(target) = replaced {
            let target_is_dir = matches!(self.inodes.get(target)?.content, Content::Dir { .. });
            match (is_dir, target_is_dir) {
                (true, false) => return Err(Errno::NOTDIR),
                (false, true) => return Err(Errno::ISDIR),
                (true, true) if !self.inodes.children(target)?.is_empty() => {
                    return Err(Errno::NOTEMPTY)
                }
                _ => {}
            }
        }
        let from = self.inodes.entry_path(parent, name)?;
        let to = self.inodes.entry_path(newparent, newname)?;
        if let Some(target) = replaced {
            self.inodes.remove_child(newparent, newname)?;
            self.unname(target, newparent)?;
        }
        self.inodes.remove_child(parent, name)?;
        self.inodes.add_child(newparent, newname.to_owned(), ino)?;
        let node = self.inodes.get_mut(ino)?;
        node.ctime = SystemTime::now();
        if let Content::Dir {
            parent: dir_parent,
            name: dir_name,
            ..
        } = &mut node.content
        {
            *dir_parent = newparent;
            *dir_name = newname.to_owned();
        }
        if is_dir && parent != newparent {
            self.inodes.get_mut(parent)?.nlink -= 1;
            self.inodes.get_mut(newparent)?.nlink += 1;
        }
        touch(self.inodes.get_mut(parent)?);
        touch(self.inodes.get_mut(newparent)?);
        let mut dirs = vec![parent];
        if newparent != parent {
            dirs.push(newparent);
        }
        self.pending.push(NameChange::Rename { from, to }, dirs);
        if let Some(target) = replaced {
            self.inodes.drop_if_unused(target);
        }
        Ok(())
    }

    /// Gives file `ino` the new name `newname` in `newparent`.
    fn link_entry(&mut self, ino: u64, newparent: u64, newname: &OsStr) -> Result<FileAttr, Errno> {
        if matches!(self.inodes.get(ino)?.content, Content::Dir { .. }) {
            return Err(Errno::PERM);
        }
        if self.inodes.children(newparent)?.contains_key(newname) {
            return Err(Errno::EXIST);
        }
        let from = self.path_of(ino)?;
        let to = self.inodes.entry_path(newparent, newname)?;
        self.inodes.add_child(newparent, newname.to_owned(), ino)?;
        let node = self.inodes.get_mut(ino)?;
        node.nlink += 1;
        node.ctime = SystemTime::now();
        touch(self.inodes.get_mut(newparent)?);
        self.pending
            .push(NameChange::Link { from, to }, vec![newparent]);
        self.entry(ino)
    }

    /// One current name of non-directory `ino`, relative to the root (for a hard link, which
    /// the replay makes from a name the file has at that point).
    fn path_of(&self, ino: u64) -> Result<PathBuf, Errno> {
        let mut dirs = vec![ROOT];
        while let Some(dir) = dirs.pop() {
            for (name, &child) in self.inodes.children(dir)? {
                if child == ino {
                    return self.inodes.entry_path(dir, name);
                }
                if matches!(self.inodes.get(child)?.content, Content::Dir { .. }) {
                    dirs.push(child);
                }
            }
        }
        Err(Errno::NOENT)
    }

    /// Replays the oldest `n` pending name changes onto the backing directory. A change that
    /// fails is reported and answered as `EIO` after the rest were tried.
    fn persist_names(&mut self, n: usize) -> Result<(), Errno> {
        let mut result = Ok(());
        for change in self.pending.take(n) {
            match change.replay(&self.backing) {
                Ok(Some(file)) => {
                    if let NameChange::Create { ino, .. } = change {
                        if let Ok(data) = self.inodes.file_mut(ino) {
                            data.attach(file);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("lazyfs: replaying {change:?} onto the backing directory: {e}");
                    result = Err(Errno::IO);
                }
            }
        }
        result
    }

    /// fsync of file `ino`: its creation (with every earlier name change) if pending, then its
    /// data. A file whose every name was removed before it got one on the backing directory has
    /// nothing to make durable.
    fn sync_file(&mut self, ino: u64) -> Result<(), Errno> {
        let through = self.pending.through_creation(ino);
        self.persist_names(through)?;
        let data = self.inodes.file_mut(ino)?;
        if data.has_backing() {
            data.sync()?;
        }
        Ok(())
    }

    /// fsync of directory `ino`: every pending change of its entries, and all before them.
    fn sync_dir(&mut self, ino: u64) -> Result<(), Errno> {
        let through = self.pending.through_dir(ino);
        self.persist_names(through)
    }

    /// setattr: length, mode, owner, times.
    #[allow(clippy::too_many_arguments)]
    fn set_attr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, Errno> {
        if let Some(size) = size {
            self.inodes.file_mut(ino)?.set_len(size);
        }
        let node = self.inodes.get_mut(ino)?;
        let now = SystemTime::now();
        if let Some(mode) = mode {
            node.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = uid {
            node.uid = uid;
        }
        if let Some(gid) = gid {
            node.gid = gid;
        }
        let at = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => now,
        };
        if let Some(atime) = atime {
            node.atime = at(atime);
        }
        if let Some(mtime) = mtime {
            node.mtime = at(mtime);
        } else if size.is_some() {
            node.mtime = now;
        }
        node.ctime = now;
        Ok(node.attr(ino))
    }

    /// The entries of directory `ino` from position `offset`: inode, kind, name.
    fn dir_entries(
        &self,
        ino: u64,
        offset: i64,
    ) -> Result<Vec<(u64, fuser::FileType, std::ffi::OsString)>, Errno> {
        let parent = match &self.inodes.get(ino)?.content {
            Content::Dir { parent, .. } => *parent,
            _ => return Err(Errno::NOTDIR),
        };
        let mut entries = vec![
            (ino, fuser::FileType::Directory, ".".into()),
            (parent, fuser::FileType::Directory, "..".into()),
        ];
        for (name, &child) in self.inodes.children(ino)? {
            entries.push((child, self.inodes.get(child)?.kind(), name.clone()));
        }
        Ok(entries
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(0))
            .collect())
    }

    /// statfs of the backing directory.
    fn backing_statfs(&self) -> Result<libc::statvfs, Errno> {
        let path = CString::new(self.backing.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)?;
        // SAFETY: `statvfs` only writes into the zeroed struct we own; the path is NUL-terminated.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(stat)
    }
}

/// Stamps a directory (or file) changed now.
fn touch(node: &mut Node) {
    let now = SystemTime::now();
    node.mtime = now;
    node.ctime = now;
}

/// An offset from the kernel, which is never negative.
fn offset_of(offset: i64) -> Result<u64, Errno> {
    u64::try_from(offset).map_err(|_| Errno::INVAL)
}

impl Filesystem for LazyFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_entry(parent, name) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(e.0),
        }
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        if let Ok(node) = self.inodes.get_mut(ino) {
            node.lookups = node.lookups.saturating_sub(nlookup);
        }
        self.inodes.drop_if_unused(ino);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.inodes.get(ino) {
            Ok(node) => reply.attr(&TTL, &node.attr(ino)),
            Err(e) => reply.error(e.0),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        match self.set_attr(ino, mode, uid, gid, size, atime, mtime) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e.0),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.inodes.get(ino).map(|n| &n.content) {
            Ok(Content::Symlink(target)) => reply.data(target.as_os_str().as_bytes()),
            Ok(_) => reply.error(libc::EINVAL),
            Err(e) => reply.error(e.0),
        }
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::PERM.0);
            return;
        }
        match self.make_file(req, parent, name, mode & !umask) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(e.0),
        }
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        let content = Content::Dir {
            children: Default::default(),
            parent,
            name: name.to_owned(),
        };
        match self.make(req, parent, name, content, perm, |path, _| {
            NameChange::Mkdir { path, perm }
        }) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(e.0),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.0),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.0),
        }
    }

    fn symlink(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let content = Content::Symlink(target.to_owned());
        let target = target.to_owned();
        match self.make(req, parent, link_name, content, 0o777, |path, _| {
            NameChange::Symlink { path, target }
        }) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(e.0),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        match self.rename_entry(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.0),
        }
    }

    fn link(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.link_entry(ino, newparent, newname) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(e.0),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.inodes.get(ino) {
            Ok(_) => reply.opened(0, 0),
            Err(e) => reply.error(e.0),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let read = offset_of(offset).and_then(|offset| {
            self.inodes
                .file_mut(ino)?
                .read(offset, u64::from(size))
                .map_err(Errno::from)
        });
        match read {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e.0),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let written = offset_of(offset).and_then(|offset| {
            self.inodes
                .file_mut(ino)?
                .write(offset, data)
                .map_err(Errno::from)?;
            touch(self.inodes.get_mut(ino)?);
            Ok(())
        });
        match written {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e.0),
        }
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.sync_file(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.0),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        match self.dir_entries(ino, offset) {
            Ok(entries) => {
                for (i, (child, kind, name)) in entries.into_iter().enumerate() {
                    if reply.add(child, offset + i as i64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e.0),
        }
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.sync_dir(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.0),
        }
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        match self.backing_statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e.0),
        }
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        match self.inodes.get(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e.0),
        }
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.make_file(req, parent, name, mode & !umask) {
            Ok(attr) => reply.created(&TTL, &attr, 0, 0, 0),
            Err(e) => reply.error(e.0),
        }
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let done = (|| {
            let end = offset_of(offset)?
                .checked_add(offset_of(length)?)
                .ok_or(Errno::INVAL)?;
            let data = self.inodes.file_mut(ino)?;
            match mode {
                // Space is not reserved on the backing directory; only the length is visible.
                0 if end > data.size() => data.set_len(end),
                0 | libc::FALLOC_FL_KEEP_SIZE => {}
                _ => return Err(Errno::NOTSUP),
            }
            Ok(())
        })();
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.0),
        }
    }
}
