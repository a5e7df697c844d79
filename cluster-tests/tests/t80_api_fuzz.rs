//! Schemathesis (PyPI) against `docs/openapi.yaml` on one real node: every check (no 5xx, status
//! codes, content types, bodies and headers as the spec says, schema-valid requests accepted,
//! schema-violating ones refused, 405 with `Allow`), a bounded number of examples per operation,
//! and the stateful phase following the links the spec gives. The node must still be running and
//! healthy afterwards: no request, admin requests included, may crash it.
//!
//! Per-operation settings (the endless change stream left out, long polls bounded) live in
//! `schemathesis.toml` at the repository root, each with its reason. Needs `schemathesis` on
//! `PATH` (`make deps` installs the pinned version).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use cluster::{within, Cluster, ClusterOptions};
use tokio::process::Command;

/// Examples per operation and phase: enough to reach every bound, small enough for two cores.
const MAX_EXAMPLES: &str = "20";
/// Time budget schemathesis gives its fuzzing and stateful phases, in seconds.
const MAX_TIME_SECS: &str = "90";
/// How long the whole test may take.
const TEST_LIMIT: Duration = Duration::from_secs(240);

/// The token schemathesis sends: a client holding every scope, `admin` included, that is also
/// the metrics token, so every secured operation takes it and its `ignored_auth` check can see
/// each one refuse a request without it.
const FUZZ_TOKEN: &str = "schemathesis-fuzz-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("clients.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[clients]]
name = "schemathesis"
token = "{FUZZ_TOKEN}"
scopes = ["orders:read", "orders:write", "orders:pay", "orders:refund", "seckill",
          "publish:*", "consume:*", "changes:read", "admin"]
"#
        ),
    )
    .expect("write the clients config");
    let options = ClusterOptions {
        extra_args: vec![
            "--config".into(),
            config.display().to_string(),
            "--metrics-token".into(),
            FUZZ_TOKEN.into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start(1, options)
        .await
        .expect("start a single node");
    within(TEST_LIMIT, scenario(&cluster, FUZZ_TOKEN)).await;
}

async fn scenario(cluster: &Cluster, token: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cluster-tests lives inside the repository");

    eprintln!("--- schemathesis: every check, every operation but the stream");
    let started = Instant::now();
    let output = run_schemathesis(repo, &cluster.api(1), token, cluster.dir()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "schemathesis ran {:.0?}:\n{}",
        started.elapsed(),
        summary(&stdout)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{}\n{}",
        output.status,
        report(&stdout),
        stderr
    );

    eprintln!("--- the node survived every request");
    assert!(
        !cluster.has_exited(1),
        "the node exited during the run:\n{}",
        cluster.log_tail(1, 60)
    );
    let health = reqwest::get(format!("{}/healthz", cluster.api(1)))
        .await
        .expect("the node answers after the run");
    assert_eq!(health.status().as_u16(), 200, "GET /healthz after the run");
}

/// Runs schemathesis on `api` with `repo`'s spec and config; its working files (the example
/// database) go to `work_dir`, not the repository. Panics with the install hint when
/// `schemathesis` is not on `PATH`.
async fn run_schemathesis(repo: &Path, api: &str, token: &str, work_dir: &Path) -> Output {
    let config: PathBuf = repo.join("schemathesis.toml");
    let spec: PathBuf = repo.join("docs/openapi.yaml");
    let authorization = format!("Authorization: Bearer {token}");
    let mut command = Command::new("schemathesis");
    command
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(&spec)
        .args(["--url", api, "--checks", "all", "--header", &authorization])
        .args(["--max-examples", MAX_EXAMPLES, "--max-time", MAX_TIME_SECS])
        .current_dir(work_dir)
        .kill_on_drop(true);
    match command.output().await {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`schemathesis` is not on PATH: install it with `make deps` \
             (`pip install schemathesis==4.32.5`, the version the Makefile pins)"
        ),
        Err(e) => panic!("running schemathesis failed: {e}"),
    }
}

/// Schemathesis' summary: phases, failures, warnings, counts and run time.
fn summary(stdout: &str) -> &str {
    stdout
        .find("=== SUMMARY")
        .map_or("(no summary)", |at| &stdout[at..])
}

/// What a failing run prints: its failures, errors, warnings and summary (everything from the
/// first section header on), at most the last 40,000 characters.
fn report(stdout: &str) -> &str {
    let from = ["=== ERRORS", "=== FAILURES", "=== WARNINGS", "=== SUMMARY"]
        .iter()
        .filter_map(|header| stdout.find(header))
        .min()
        .map(|at| stdout[..at].rfind('\n').map_or(0, |nl| nl + 1))
        .unwrap_or(0);
    let report = &stdout[from..];
    let mut cut = report.len().saturating_sub(40_000);
    while !report.is_char_boundary(cut) {
        cut += 1;
    }
    &report[cut..]
}
