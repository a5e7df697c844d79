//! [`Errno`]: what a failed filesystem operation answers the kernel.

use std::fmt;

/// An `errno` value for a FUSE reply. Failures of the backing directory keep their OS error;
/// a replay that cannot be done answers `EIO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub libc::c_int);

impl Errno {
    /// No such file or directory.
    pub const NOENT: Errno = Errno(libc::ENOENT);
    /// The name exists already.
    pub const EXIST: Errno = Errno(libc::EEXIST);
    /// A directory was expected.
    pub const NOTDIR: Errno = Errno(libc::ENOTDIR);
    /// Not for a directory.
    pub const ISDIR: Errno = Errno(libc::EISDIR);
    /// The directory is not empty.
    pub const NOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
    /// An argument is out of range.
    pub const INVAL: Errno = Errno(libc::EINVAL);
    /// Not supported by this filesystem.
    pub const NOTSUP: Errno = Errno(libc::EOPNOTSUPP);
    /// Not permitted (special files).
    pub const PERM: Errno = Errno(libc::EPERM);
    /// The backing directory failed in a way with no better code.
    pub const IO: Errno = Errno(libc::EIO);
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}
