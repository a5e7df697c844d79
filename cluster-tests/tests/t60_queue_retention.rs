//! Queue retention, on real processes: with `--queue-retention-secs 1` the messages a group
//! acknowledged are removed (the change stream shows their deletes) and the unsettled ones all
//! stay to be delivered.

use std::time::Duration;

use cluster::{poll_until, within, Cluster, ClusterOptions, Endpoint, NodeClient, Receive};

/// Offsets of `topic`'s messages deleted so far, read from the change stream of `client`.
async fn deleted_offsets(client: &NodeClient, topic: &str) -> Result<Vec<u64>, String> {
    let mut after = None;
    let mut deleted = Vec::new();
    loop {
        let page = client
            .changes(after, 1000, 0)
            .await
            .map_err(|e| e.to_string())?;
        if page.changes.is_empty() {
            return Ok(deleted);
        }
        for c in &page.changes {
            if c.table == "messages" && c.op == "delete" && c.before["topic"] == topic {
                deleted.extend(c.before["offset"].as_u64());
            }
        }
        after = Some(page.next);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_retention_removes_settled_messages_only() {
    let cluster = Cluster::start(
        1,
        ClusterOptions {
            extra_args: vec!["--queue-retention-secs".into(), "1".into()],
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster");
    within(Duration::from_secs(60), async {
        cluster
            .subscribe_pull("keeper", "kept")
            .await
            .expect("subscribe");
        cluster
            .publish_numbered("kept", 20, 7)
            .await
            .expect("publish");
        let receive = Receive::waiting(10, 2000).visibility_ms(30000);
        let receipts = cluster
            .receive("keeper", &receive)
            .await
            .expect("receive")
            .receipts();
        assert_eq!(receipts.len(), 10);
        cluster.ack("keeper", &receipts).await.expect("ack");

        // The ten settled messages go once older than a second; the change stream shows it.
        let client = cluster.client(1).clone();
        let deleted = poll_until(
            "settled messages removed",
            Duration::from_secs(20),
            || async {
                let deleted = deleted_offsets(&client, "kept").await?;
                if deleted.len() >= 10 {
                    Ok(deleted)
                } else {
                    Err(format!("{} removed", deleted.len()))
                }
            },
        )
        .await
        .expect("retention removes settled messages");
        assert_eq!(
            deleted,
            (1..=10).collect::<Vec<u64>>(),
            "only the settled ones"
        );

        // The unsettled ones are all still there to be delivered.
        let rest = cluster.receive("keeper", &receive).await.expect("receive");
        let numbers: Vec<i64> = rest
            .messages
            .iter()
            .filter_map(|m| m.payload["n"].as_i64())
            .collect();
        assert_eq!(numbers, (10..20).collect::<Vec<i64>>());
    })
    .await;
}
