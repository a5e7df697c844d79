//! [`FileData`]: one regular file's contents, split into what is durable (the backing file as
//! last synced) and what was written since (pages in memory, lost at a power cut).
//!
//! To ensure correctness:
//! - Reads see the running system's view: the pages in memory over the backing file, the backing
//!   file only up to [`FileData`]'s `visible_len` (a truncation since the last sync hides the
//!   rest), zeros beyond, nothing past `size`.
//! - Nothing reaches the backing file except through [`FileData::sync`], which leaves it equal to
//!   the running view.
//! - A page in memory holds the whole page as the running system sees it (loaded from the backing
//!   file when first written partly), and zeros past `size`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes per page kept in memory.
pub const PAGE: u64 = 4096;

/// One regular file's contents.
#[derive(Debug, Default)]
pub struct FileData {
    /// The backing file, once the file's name is durable (an inode created since the last
    /// durable point has none; its contents live in `pages` alone).
    backing: Option<File>,
    /// The backing file's length as last synced.
    durable_len: u64,
    /// How much of the backing file the running system still sees: `durable_len`, less any
    /// truncation since the last sync.
    visible_len: u64,
    /// The file's length as the running system sees it.
    size: u64,
    /// Pages written since the last sync, by page index.
    pages: BTreeMap<u64, Box<[u8]>>,
}

impl FileData {
    /// A file that exists on the backing directory already (found at mount), `len` bytes long.
    pub fn durable(backing: File, len: u64) -> Self {
        FileData {
            backing: Some(backing),
            durable_len: len,
            visible_len: len,
            size: len,
            pages: BTreeMap::new(),
        }
    }

    /// A file created since the last durable point: empty, in memory only.
    pub fn created() -> Self {
        FileData::default()
    }

    /// Its length as the running system sees it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether its name has been made durable (it has a backing file).
    pub fn has_backing(&self) -> bool {
        self.backing.is_some()
    }

    /// Bytes held in memory only.
    pub fn unsynced_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }

    /// Its creation became durable: `backing` is the new, empty backing file. Everything
    /// written so far stays in memory until the next sync.
    pub fn attach(&mut self, backing: File) {
        self.backing = Some(backing);
        self.durable_len = 0;
        self.visible_len = 0;
    }

    /// Up to `len` bytes from `offset`, as the running system sees them (short at the end).
    pub fn read(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let from_backing = end.min(self.visible_len);
        if offset < from_backing {
            self.read_backing(offset, &mut out[..(from_backing - offset) as usize])?;
        }
        for (&index, page) in self.pages.range(offset / PAGE..=(end - 1) / PAGE) {
            let page_start = index * PAGE;
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&page[(from - page_start) as usize..(to - page_start) as usize]);
        }
        Ok(out)
    }

    /// Writes `data` at `offset`, in memory.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        for index in offset / PAGE..=(end - 1) / PAGE {
            if !self.pages.contains_key(&index) {
                let page = self.load_page(index)?;
                self.pages.insert(index, page);
            }
            let page_start = index * PAGE;
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE);
            if let Some(page) = self.pages.get_mut(&index) {
                page[(from - page_start) as usize..(to - page_start) as usize]
                    .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
            }
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// Truncates or extends (with zeros) to `len`, in memory.
    pub fn set_len(&mut self, len: u64) {
        if len < self.size {
            drop(self.pages.split_off(&len.div_ceil(PAGE)));
            if !len.is_multiple_of(PAGE) {
                if let Some(page) = self.pages.get_mut(&(len / PAGE)) {
                    page[(len % PAGE) as usize..].fill(0);
                }
            }
            self.visible_len = self.visible_len.min(len);
        }
        self.size = len;
    }

    /// Makes the running view durable: writes the pages in memory to the backing file and gives
    /// it the running length. Fails with `EIO` for a file without a backing file (its creation
    /// must be made durable first).
    pub fn sync(&mut self) -> io::Result<()> {
        let backing = self
            .backing
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
        if self.visible_len < self.durable_len {
            backing.set_len(self.visible_len)?;
        }
        for (&index, page) in &self.pages {
            let page_start = index * PAGE;
            let len = PAGE.min(self.size.saturating_sub(page_start)) as usize;
            backing.write_all_at(&page[..len], page_start)?;
        }
        backing.set_len(self.size)?;
        self.pages.clear();
        self.durable_len = self.size;
        self.visible_len = self.size;
        Ok(())
    }

    /// Page `index` as the running system sees it before a write to it: the visible part of the
    /// backing file, zeros after.
    fn load_page(&self, index: u64) -> io::Result<Box<[u8]>> {
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        let start = index * PAGE;
        let visible = self.visible_len.min(start + PAGE);
        if start < visible {
            self.read_backing(start, &mut page[..(visible - start) as usize])?;
        }
        Ok(page)
    }

    /// Fills `buf` from the backing file at `offset`; what lies past its end stays zero.
    fn read_backing(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let Some(backing) = &self.backing else {
            return Ok(());
        };
        let mut done = 0;
        while done < buf.len() {
            match backing.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing(content: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("f");
        std::fs::write(&path, content).expect("writing the backing file");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("opening the backing file");
        (dir, file)
    }

    fn on_disk(dir: &tempfile::TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join("f")).expect("reading the backing file")
    }

    #[test]
    fn writes_stay_in_memory_until_synced() {
        let (dir, file) = backing(b"durable");
        let mut data = FileData::durable(file, 7);
        data.write(3, b"ABCDEFGH").expect("write");
        assert_eq!(data.read(0, 100).expect("read"), b"durABCDEFGH");
        assert_eq!(on_disk(&dir), b"durable");
        data.sync().expect("sync");
        assert_eq!(on_disk(&dir), b"durABCDEFGH");
        assert_eq!(data.unsynced_bytes(), 0);
        assert_eq!(data.read(2, 3).expect("read"), b"rAB");
    }

    #[test]
    fn a_truncation_hides_the_backing_file_until_synced() {
        let content = vec![7u8; 3 * PAGE as usize];
        let (dir, file) = backing(&content);
        let mut data = FileData::durable(file, content.len() as u64);
        data.set_len(10);
        data.set_len(2 * PAGE);
        let read = data.read(0, 3 * PAGE).expect("read");
        assert_eq!(read.len(), 2 * PAGE as usize);
        assert!(read[..10].iter().all(|b| *b == 7));
        assert!(read[10..].iter().all(|b| *b == 0));
        assert_eq!(on_disk(&dir), content);
        data.write(PAGE + 1, b"x").expect("write");
        data.sync().expect("sync");
        let synced = on_disk(&dir);
        assert_eq!(synced.len(), 2 * PAGE as usize);
        assert_eq!(synced, data.read(0, 3 * PAGE).expect("read"));
        assert_eq!(synced[PAGE as usize + 1], b'x');
    }

    #[test]
    fn a_partly_truncated_page_reads_zeros_past_the_cut() {
        let (_dir, file) = backing(b"");
        let mut data = FileData::durable(file, 0);
        data.write(0, b"0123456789").expect("write");
        data.set_len(4);
        data.set_len(8);
        assert_eq!(data.read(0, 8).expect("read"), b"0123\0\0\0\0");
    }

    #[test]
    fn a_created_file_needs_a_backing_file_to_sync() {
        let mut data = FileData::created();
        data.write(0, b"new").expect("write");
        assert!(data.sync().is_err());
        let (dir, file) = backing(b"");
        data.attach(file);
        data.sync().expect("sync");
        assert_eq!(on_disk(&dir), b"new");
    }
}
