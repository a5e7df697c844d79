//! Each admin answer as a person reads it: a line of figures, then aligned tables. Fields the
//! node leaves out print as `-`, so an older or newer node still prints.

use serde_json::Value;

use super::table::{cell, Table};

/// Widest payload or error shown in a table cell; `--json` has them whole.
const WIDE_CELL: usize = 60;
/// Widest ordinary cell.
const CELL: usize = 40;

/// The items of `value[key]`, none when it is not an array.
fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

/// `value[key]` as a cell.
fn field(value: &Value, key: &str) -> String {
    cell(&value[key], CELL)
}

/// "next: X" when a page has a `next`, else nothing.
fn next_line(value: &Value) -> String {
    match &value["next"] {
        Value::Null => String::new(),
        next => format!("next: {}\n", cell(next, CELL)),
    }
}

/// `GET /admin/cluster`: the answering node's view, and each member's role and lag.
pub fn cluster(status: &Value) -> String {
    let leader = status["leader_id"].as_u64();
    let last_log = status["last_log_index"].as_u64();
    let mut out = format!(
        "node {} answering · leader {} · term {} · last log {} · applied {} · snapshot {}\n",
        field(status, "node_id"),
        field(status, "leader_id"),
        field(status, "term"),
        field(status, "last_log_index"),
        field(status, "last_applied"),
        field(status, "snapshot_index"),
    );
    if status["quorum_lost"] == true {
        out.push_str("warning: this leader has not heard from a quorum\n");
    }
    if status["clock_skewed"] == true {
        out.push_str("warning: this node's clock is off from the other voters'\n");
    }
    let learners = items(status, "learners");
    let mut table = Table::new(&["ID", "ROLE", "API", "RAFT", "MATCHED", "LAG", "CLOCK_MS"]);
    for node in items(status, "nodes") {
        let id = node["id"].as_u64();
        let role = if id.is_some() && id == leader {
            "leader"
        } else if learners.contains(&node["id"]) {
            "learner"
        } else {
            "follower"
        };
        let lag = match (last_log, node["matched_index"].as_u64()) {
            (Some(last), Some(matched)) => last.saturating_sub(matched).to_string(),
            _ => "-".into(),
        };
        table.row(vec![
            field(node, "id"),
            role.into(),
            field(node, "api_addr"),
            field(node, "raft_addr"),
            field(node, "matched_index"),
            lag,
            field(node, "clock_offset_ms"),
        ]);
    }
    out + &table.render()
}

/// `GET /admin/skus`: one page of stock.
pub fn skus(page: &Value) -> String {
    let mut table = Table::new(&[
        "SKU",
        "PRICE_CENTS",
        "AVAILABLE",
        "RESERVED",
        "SOLD",
        "PER_USER_LIMIT",
        "SOLD_OUT",
    ]);
    for sku in items(page, "skus") {
        table.row(
            [
                "sku",
                "price_cents",
                "available",
                "reserved",
                "sold",
                "per_user_limit",
                "sold_out",
            ]
            .iter()
            .map(|k| field(sku, k))
            .collect(),
        );
    }
    table.render() + &next_line(page)
}

/// `GET /admin/topics`.
pub fn topics(answer: &Value) -> String {
    let mut table = Table::new(&[
        "TOPIC",
        "HEAD",
        "FLOOR",
        "HELD",
        "LAST_MINUTE",
        "PER_SEC",
        "SUBSCRIPTIONS",
    ]);
    for topic in items(answer, "topics") {
        let groups: Vec<String> = items(topic, "subscriptions")
            .iter()
            .map(|g| cell(g, CELL))
            .collect();
        table.row(vec![
            field(topic, "topic"),
            field(topic, "head"),
            field(topic, "floor"),
            field(topic, "held"),
            field(topic, "published_last_minute"),
            format!(
                "{:.2}",
                topic["publish_rate_per_sec"].as_f64().unwrap_or(0.0)
            ),
            groups.join(","),
        ]);
    }
    table.render()
}

/// `GET /admin/subscriptions`.
pub fn subscriptions(answer: &Value) -> String {
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "MODE",
        "BACKLOG",
        "IN_FLIGHT",
        "DELIVERED",
        "DEAD",
        "OLDEST_UNACKED_MS",
        "RATE_PER_SEC",
        "PAUSED",
    ]);
    for sub in items(answer, "subscriptions") {
        let mode = if sub["push"].is_object() {
            "push"
        } else {
            "pull"
        };
        table.row(vec![
            field(sub, "group"),
            field(sub, "topic"),
            mode.into(),
            field(sub, "backlog"),
            field(sub, "in_flight"),
            field(sub, "delivered"),
            field(sub, "dead"),
            field(sub, "oldest_unacked_age_ms"),
            field(sub, "rate_per_sec"),
            field(sub, "paused"),
        ]);
    }
    table.render()
}

/// The last attempt's error of a dead letter or delivery.
fn last_error(attempts: &[Value]) -> String {
    attempts
        .last()
        .map_or_else(|| "-".into(), |a| cell(&a["error"], WIDE_CELL))
}

/// `GET /admin/subscriptions/{group}/dead`.
pub fn dead_letters(page: &Value) -> String {
    let mut table = Table::new(&["ID", "KEY", "ATTEMPTS", "LAST_ERROR", "DEAD_AT", "PAYLOAD"]);
    for dead in items(page, "dead") {
        let attempts = items(dead, "attempts");
        table.row(vec![
            field(dead, "id"),
            field(dead, "key"),
            attempts.len().to_string(),
            last_error(attempts),
            field(dead, "dead_at"),
            cell(&dead["payload"], WIDE_CELL),
        ]);
    }
    table.render() + &next_line(page)
}

/// `POST .../dead/redrive`.
pub fn redriven(answer: &Value) -> String {
    format!("redriven {}\n", field(answer, "redriven"))
}

/// `POST .../dead/purge`.
pub fn purged(answer: &Value) -> String {
    format!("purged {}\n", field(answer, "purged"))
}

/// `GET /admin/orders/{id}/trace`: the order, its changes, its messages and their deliveries.
pub fn trace(answer: &Value) -> String {
    let order = &answer["order"];
    let mut out = format!(
        "order {} · user {} · {} · {} cents · created {}\n\nCHANGES\n",
        field(order, "id"),
        field(order, "user_id"),
        field(order, "state"),
        field(order, "amount_cents"),
        field(order, "created_at"),
    );
    let mut changes = Table::new(&["OFFSET", "AT", "OP", "BEFORE", "AFTER"]);
    for change in items(answer, "changes") {
        changes.row(vec![
            field(change, "offset"),
            field(change, "at"),
            field(change, "op"),
            cell(&change["before"]["state"], CELL),
            cell(&change["after"]["state"], CELL),
        ]);
    }
    out.push_str(&changes.render());
    out.push_str("\nMESSAGES\n");
    let mut messages = Table::new(&[
        "ID",
        "TOPIC",
        "PUBLISHED_AT",
        "GROUP",
        "STATUS",
        "SINCE",
        "ATTEMPTS",
        "LAST_ERROR",
    ]);
    for message in items(answer, "messages") {
        let deliveries = items(message, "deliveries");
        let head = [
            field(message, "id"),
            field(message, "topic"),
            field(message, "published_at"),
        ];
        if deliveries.is_empty() {
            let mut row = head.to_vec();
            row.push("(no subscription)".into());
            messages.row(row);
        }
        for delivery in deliveries {
            let mut row = head.to_vec();
            row.extend([
                field(delivery, "group"),
                field(delivery, "status"),
                // When it was acknowledged, or when it died.
                if delivery["acked_at"].is_string() {
                    field(delivery, "acked_at")
                } else {
                    field(delivery, "dead_at")
                },
                items(delivery, "attempts").len().to_string(),
                cell(&delivery["last_error"], WIDE_CELL),
            ]);
            messages.row(row);
        }
    }
    out.push_str(&messages.render());
    if answer["complete"] == false {
        out.push_str(&format!(
            "incomplete: go on with --after {}\n",
            field(answer, "next")
        ));
    }
    out
}

/// `GET /admin/timers`.
pub fn timers(answer: &Value) -> String {
    let mut table = Table::new(&["PENDING", "NEXT_DUE_AT", "FIRED", "LAG_MS_P99"]);
    table.row(
        ["pending", "next_due_at", "fired", "lag_ms_p99"]
            .iter()
            .map(|k| field(answer, k))
            .collect(),
    );
    let mut out = table.render();
    let closes = items(answer, "recent_closes");
    if !closes.is_empty() {
        out.push_str("\nRECENT CLOSES\n");
        let mut recent = Table::new(&["ORDER", "USER", "CLOSED_AT", "REASON"]);
        for close in closes {
            recent.row(
                ["order_id", "user_id", "closed_at", "reason"]
                    .iter()
                    .map(|k| field(close, k))
                    .collect(),
            );
        }
        out.push_str(&recent.render());
    }
    out
}

/// `POST /admin/snapshot`.
pub fn snapshot(answer: &Value) -> String {
    format!("snapshot at index {}\n", field(answer, "index"))
}

/// `POST /admin/backup`.
pub fn backup(answer: &Value) -> String {
    format!(
        "backup in {} at index {} (digest {})\n",
        cell(&answer["dir"], usize::MAX),
        field(answer, "applied_index"),
        cell(&answer["digest"], usize::MAX)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_names_roles_and_lag() {
        let status = json!({
            "node_id": 2, "leader_id": 1, "term": 3, "last_log_index": 10, "last_applied": 10,
            "learners": [3],
            "nodes": [
                {"id": 1, "api_addr": "a1", "raft_addr": "r1", "matched_index": 10},
                {"id": 2, "api_addr": "a2", "raft_addr": "r2", "matched_index": 7},
                {"id": 3, "api_addr": "a3", "raft_addr": "r3", "matched_index": null},
            ],
        });
        let text = cluster(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("node 2 answering · leader 1 · term 3"));
        assert!(lines[2].starts_with("1   leader"), "{text}");
        assert!(
            lines[3].contains("follower") && lines[3].contains(" 3 "),
            "{text}"
        );
        assert!(lines[4].contains("learner"), "{text}");
    }

    #[test]
    fn a_trace_lists_one_row_per_delivery() {
        let answer = json!({
            "order": {"id": "o1", "user_id": "u1", "state": "paid"},
            "changes": [{"offset": 4, "op": "update", "before": {"state": "pending_payment"}, "after": {"state": "paid"}}],
            "messages": [{"id": "m1", "topic": "order.paid", "deliveries": [
                {"group": "points", "status": "settled", "attempts": [], "acked_at": "2026-11-30T17:00:00Z"},
                {"group": "sms", "status": "dead", "attempts": [{"error": "HTTP 500"}], "last_error": "HTTP 500"},
            ]}],
            "complete": true,
        });
        let text = trace(&answer);
        assert!(text.contains("pending_payment  paid"), "{text}");
        assert!(
            text.contains("points  settled  2026-11-30T17:00:00Z"),
            "{text}"
        );
        assert!(text.contains("HTTP 500"), "{text}");
        assert!(!text.contains("incomplete"), "{text}");
    }
}
