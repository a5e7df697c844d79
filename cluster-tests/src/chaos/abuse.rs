//! The HTTP abuse scenario.

use serde::Serialize;

use crate::error::{Error, Result};

/// The outcome of the abuse scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    /// Every probe passed.
    pub passed: bool,
}

impl AbuseReport {
    /// Terminal summary.
    pub fn summary(&self) -> String {
        format!("abuse: {}", self.passed)
    }
}

/// Runs the scenario.
pub async fn run() -> Result<AbuseReport> {
    Err(Error::Usage("not built yet".into()))
}
