//! [`ChangeFollower`]: a consumer of the change stream that survives restarts without gaps or
//! repeats.
//!
//! It appends each change as one NDJSON line to an output file and keeps, in a small state file,
//! the offset to resume after *and the output's length at that offset*. The state file is
//! replaced atomically (write, fsync, rename) only after the lines are synced, so after a crash
//! at any point, reopening truncates the output to the recorded length and asks again after the
//! recorded offset: a page half-written when the crash came is dropped and fetched again, and
//! nothing is written twice. This is the pattern any sink needs: the offset commits with the data.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::client::NodeClient;
use crate::error::{Error, Result};
use crate::model::Change;

/// A change-stream consumer writing to a file, with its position in another.
#[derive(Debug)]
pub struct ChangeFollower {
    /// The node followed (best a learner).
    client: NodeClient,
    /// `OFFSET LENGTH` of the last committed page.
    state_path: PathBuf,
    /// The NDJSON output, open for appending.
    out: File,
    /// The offset to ask after; `None` before the first page (start at the node's oldest).
    offset: Option<u64>,
    /// Bytes of `out` that belong to committed pages.
    out_len: u64,
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

impl ChangeFollower {
    /// Opens (or resumes) a follower of `client` keeping its position in `state_path` and
    /// writing changes to `out_path`; output past the last committed page is cut off.
    pub fn open(client: NodeClient, state_path: &Path, out_path: &Path) -> Result<Self> {
        let (offset, out_len) = match fs::read_to_string(state_path) {
            Ok(text) => parse_state(&text).ok_or_else(|| {
                Error::Usage(format!("{} is not `OFFSET LENGTH`", state_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(io_error(format!("reading {}", state_path.display()))(e)),
        };
        let mut out = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(out_path)
            .map_err(io_error(format!("opening {}", out_path.display())))?;
        out.set_len(out_len)
            .and_then(|()| out.seek(SeekFrom::Start(out_len)).map(|_| ()))
            .map_err(io_error(format!("truncating {}", out_path.display())))?;
        Ok(ChangeFollower {
            client,
            state_path: state_path.to_owned(),
            out,
            offset,
            out_len,
        })
    }

    /// The offset the next page is asked after.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// Fetches one page (waiting up to `wait_ms` when there is nothing new), writes it and
    /// commits the new offset. Answers how many changes it wrote.
    pub async fn step(&mut self, limit: u32, wait_ms: u64) -> Result<usize> {
        let page = self.client.changes_raw(self.offset, limit, wait_ms).await?;
        let mut lines = Vec::new();
        for change in &page.changes {
            lines.extend_from_slice(change.get().as_bytes());
            lines.push(b'\n');
        }
        let out_context = || "writing the follower's output".to_owned();
        self.out
            .write_all(&lines)
            .and_then(|()| self.out.sync_data())
            .map_err(io_error(out_context()))?;
        let out_len = self.out_len + lines.len() as u64;
        self.commit(page.next, out_len)?;
        self.offset = Some(page.next);
        self.out_len = out_len;
        Ok(page.changes.len())
    }

    /// Replaces the state file with `offset out_len`, atomically and durably.
    fn commit(&self, offset: u64, out_len: u64) -> Result<()> {
        let tmp = self.state_path.with_extension("tmp");
        let context = format!("committing {}", self.state_path.display());
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            writeln!(file, "{offset} {out_len}")?;
            file.sync_all()?;
            fs::rename(&tmp, &self.state_path)?;
            if let Some(dir) = self.state_path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(io_error(context))
    }

    /// Every change in an output file, in file order.
    pub fn read_output(out_path: &Path) -> Result<Vec<Change>> {
        let file =
            File::open(out_path).map_err(io_error(format!("opening {}", out_path.display())))?;
        let mut changes = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io_error(format!("reading {}", out_path.display())))?;
            let change = serde_json::from_str(&line).map_err(|source| Error::Decode {
                request: format!("reading {}", out_path.display()),
                source,
                body: line.clone(),
            })?;
            changes.push(change);
        }
        Ok(changes)
    }
}

/// Parses `OFFSET LENGTH`.
fn parse_state(text: &str) -> Option<(Option<u64>, u64)> {
    let (offset, len) = text.trim().split_once(' ')?;
    Some((Some(offset.parse().ok()?), len.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_parse() {
        assert_eq!(parse_state("42 100\n"), Some((Some(42), 100)));
        assert_eq!(parse_state("42"), None);
        assert_eq!(parse_state("x 1"), None);
    }
}
