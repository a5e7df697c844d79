//! `docs/config.md` against the code: every key of [`Config`] (and of its `[payment]` and `[tls]`
//! tables) has a row, every row's default is what [`Config::default`] holds, and every flag and
//! environment variable a row names is one `orderq serve` accepts, so the reference cannot drift.

use std::collections::BTreeSet;

use clap::Args;
use node::config::{Config, ServeArgs};

/// One row of the reference's key table.
struct Row {
    /// The key, `table.key` inside a table.
    key: String,
    /// Its default as TOML, or `none`.
    default: String,
    /// `ORDERQ_...`, or `—` when it has none.
    env: String,
    /// `--flag`, or `—`.
    flag: String,
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"))
        .expect("docs/config.md");
    let table = text
        .split("\n\n")
        .find(|block| block.starts_with("| key |"))
        .expect("the key table");
    table
        .lines()
        .skip(2)
        .map(|line| {
            let cells: Vec<String> = line
                .split('|')
                .map(|cell| cell.trim().trim_matches('`').to_string())
                .collect();
            Row {
                key: cells[1].clone(),
                default: cells[2].clone(),
                env: cells[3].clone(),
                flag: cells[4].clone(),
            }
        })
        .collect()
}

/// The keys serde accepts in `table` (`""` for the top level), read from the error
/// `deny_unknown_fields` gives for an unknown key: it lists every expected one.
fn struct_keys(table: &str) -> BTreeSet<String> {
    let toml = if table.is_empty() {
        "zz_not_a_key = 1".to_string()
    } else {
        format!("[{table}]\nzz_not_a_key = 1")
    };
    let error = toml::from_str::<Config>(&toml)
        .expect_err("an unknown key is refused")
        .to_string();
    let expected = error
        .split("expected one of")
        .nth(1)
        .expect("the error lists the expected keys");
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|key| {
            if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            }
        })
        .collect()
}

#[test]
fn every_key_of_the_config_struct_is_in_the_reference() {
    let mut keys = struct_keys("");
    for table in ["payment", "tls"] {
        assert!(keys.remove(table), "{table} is a table of Config");
        keys.extend(struct_keys(table));
    }
    let documented: BTreeSet<String> = rows().into_iter().map(|row| row.key).collect();
    assert_eq!(
        documented, keys,
        "docs/config.md lists exactly Config's keys"
    );
}

#[test]
fn every_default_in_the_reference_is_the_structs() {
    for row in rows().into_iter().filter(|row| row.default != "none") {
        let toml = match row.key.split_once('.') {
            Some((table, key)) => format!("[{table}]\n{key} = {}", row.default),
            None => format!("{} = {}", row.key, row.default),
        };
        let parsed: Config = toml::from_str(&toml)
            .unwrap_or_else(|e| panic!("{}'s default {} is not valid: {e}", row.key, row.default));
        assert_eq!(
            parsed,
            Config::default(),
            "{}'s documented default {} is not Config::default()'s",
            row.key,
            row.default
        );
    }
}

#[test]
fn every_flag_and_env_in_the_reference_exists() {
    let serve = ServeArgs::augment_args(clap::Command::new("serve"));
    let accepted: BTreeSet<(String, String)> = serve
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let env = arg.get_env()?.to_str()?;
            Some((format!("--{long}"), env.to_string()))
        })
        .collect();
    let mut documented = BTreeSet::new();
    for row in rows().into_iter().filter(|row| row.flag != "—") {
        let pair = (row.flag.clone(), row.env.clone());
        assert!(
            accepted.contains(&pair),
            "{}: `orderq serve` has no {} with env {}",
            row.key,
            row.flag,
            row.env
        );
        documented.insert(pair);
    }
    let undocumented: Vec<_> = accepted
        .difference(&documented)
        .filter(|(flag, _)| flag != "--config")
        .collect();
    assert!(
        undocumented.is_empty(),
        "flags missing from docs/config.md: {undocumented:?}"
    );
}
