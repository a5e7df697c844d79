//! [`Chromedriver`]: a `chromedriver` process on a free port, driving Debian's headless
//! Chromium, for the console's browser test. Started by the test, killed by pid when dropped.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::ports::reserve_ports_on;
use crate::process::NodeProcess;
use crate::wait::poll_until;

/// Environment variable naming the chromedriver binary (default: `chromedriver` on `PATH`).
pub const CHROMEDRIVER_ENV: &str = "CHROMEDRIVER";
/// Environment variable naming the browser binary (default: Debian's `/usr/bin/chromium`).
pub const CHROMIUM_ENV: &str = "CHROMIUM";
/// How long chromedriver may take to answer its status.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A running chromedriver; dropping it kills it (end the WebDriver session first, so the
/// browser quits with it).
pub struct Chromedriver {
    /// The process, killed by pid on drop.
    _process: NodeProcess,
    /// `http://127.0.0.1:PORT`, the WebDriver endpoint.
    url: String,
    /// Holds its log; declared last so it outlives the process.
    dir: TempDir,
}

impl Chromedriver {
    /// Starts chromedriver on a free port and waits until it is ready for sessions.
    pub async fn start() -> Result<Chromedriver> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            context: "creating chromedriver's directory".into(),
            source,
        })?;
        let port = reserve_ports_on(Ipv4Addr::LOCALHOST, 1)?[0];
        let binary = std::env::var(CHROMEDRIVER_ENV).unwrap_or_else(|_| "chromedriver".into());
        let process = NodeProcess::spawn(
            0,
            Path::new(&binary),
            &[format!("--port={port}"), "--allowed-ips=127.0.0.1".into()],
            &[],
            &dir.path().join("chromedriver.log"),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let http = reqwest::Client::new();
        poll_until("chromedriver ready", START_LIMIT, || async {
            let answer = http.get(&status).send().await.map_err(|e| e.to_string())?;
            let body: Value = answer.json().await.map_err(|e| e.to_string())?;
            if body["value"]["ready"] == true {
                Ok(())
            } else {
                Err(body.to_string())
            }
        })
        .await?;
        Ok(Chromedriver {
            _process: process,
            url,
            dir,
        })
    }

    /// The WebDriver endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where chromedriver's log is.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("chromedriver.log")
    }

    /// Session capabilities: headless Chromium with a `width`×`height` window.
    pub fn capabilities(width: u32, height: u32) -> Map<String, Value> {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                format!("--window-size={width},{height}"),
            ],
        });
        let browser = std::env::var(CHROMIUM_ENV).unwrap_or_else(|_| "/usr/bin/chromium".into());
        if Path::new(&browser).exists() {
            options["binary"] = Value::String(browser);
        }
        let mut capabilities = Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        capabilities
    }
}
