//! A node's wall clock set apart from the machine's: Debian's libfaketime preloaded into the
//! node, reading its offset from a file it checks again every second, so a test or a chaos
//! fault can move the clock forward and step it back while the node runs. The monotonic clock
//! is left alone (timeouts and elections run as usual); only what the node reads as the time of
//! day moves.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where Debian's `faketime` package puts the library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// One node's clock, driven through its offset file.
#[derive(Debug, Clone)]
pub struct FakeClock {
    /// The file libfaketime reads the offset from (`+600` is ten minutes ahead).
    spec_file: PathBuf,
}

impl FakeClock {
    /// A clock whose offset lives in `spec_file`, starting at `offset` (libfaketime's syntax:
    /// `+600`, `-10m`, `+0`). Fails when libfaketime is not installed, saying how to get it.
    pub fn new(spec_file: &Path, offset: &str) -> Result<Self> {
        if !Path::new(LIBFAKETIME).exists() {
            return Err(Error::Usage(format!(
                "{LIBFAKETIME} is missing: the README's set-up installs Debian's faketime"
            )));
        }
        let clock = FakeClock {
            spec_file: spec_file.to_owned(),
        };
        clock.set(offset)?;
        Ok(clock)
    }

    /// Moves the clock to `offset` from the real time; the node sees it within a second.
    pub fn set(&self, offset: &str) -> Result<()> {
        std::fs::write(&self.spec_file, format!("{offset}\n"))
            .map_err(|e| Error::Usage(format!("writing {}: {e}", self.spec_file.display())))
    }

    /// The environment that starts a node on this clock (see [`crate::Cluster::restart_with_env`]).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", LIBFAKETIME.to_owned()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                self.spec_file.display().to_string(),
            ),
            ("FAKETIME_CACHE_DURATION", "1".to_owned()),
            ("DONT_FAKE_MONOTONIC", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
