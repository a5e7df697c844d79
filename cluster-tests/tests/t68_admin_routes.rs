//! The operators' admin routes on a real node: topics, the SKU list in pages, an order's trace
//! with its paid event's delivery, dead-letter search and purge, and a group's pause, resume and
//! reset to the earliest message (which delivers it again).

use std::time::Duration;

use cluster::scene::NEEDLE_TEXT;
use cluster::{poll_until, within, Cluster, ClusterOptions, Endpoint, OperatorScene, Request};
use reqwest::Method;
use serde_json::{json, Value};

async fn admin(cluster: &Cluster, request: Request) -> Value {
    let answer = cluster.client(1).send(request).await.expect("request");
    assert!(answer.is_success(), "{}", answer.json());
    answer.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t68_admin_routes_trace_search_purge_pause_and_reset() {
    let cluster = Cluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    within(Duration::from_secs(90), async {
        // --- a paid order whose event a push group delivers; a group's dead letters
        let scene = OperatorScene::set_up(&cluster).await.expect("scene");
        let points = &scene.points;
        let order_id = &scene.order_id;

        // --- topics and the SKU list
        let topics = admin(&cluster, Request::get("/admin/topics")).await;
        let paid = topics["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .find(|t| t["topic"] == "order.paid")
            .cloned()
            .expect("order.paid listed");
        assert_eq!(paid["head"], 1);
        assert_eq!(paid["published_last_minute"], 1);
        assert_eq!(paid["subscriptions"], json!(["points"]));
        let page = admin(&cluster, Request::get("/admin/skus?limit=2")).await;
        assert_eq!(page["skus"][0]["sku"], "A");
        assert_eq!(page["skus"][0]["reserved"], 0);
        assert_eq!(page["skus"][0]["sold"], 2);
        assert_eq!(page["skus"][0]["sold_out"], false);
        assert_eq!(page["next"], "B");
        let rest = admin(&cluster, Request::get("/admin/skus?after=B")).await;
        assert_eq!(rest["skus"][0]["sku"], "C");
        assert_eq!(rest["next"], Value::Null);

        // --- the order's trace shows its changes and the paid event settled
        let trace = poll_until("paid event settled", Duration::from_secs(10), || async {
            let trace = admin(
                &cluster,
                Request::get(format!("/admin/orders/{order_id}/trace")),
            )
            .await;
            let settled = trace["messages"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["topic"] == "order.paid"
                        && m["deliveries"][0]["group"] == "points"
                        && m["deliveries"][0]["status"] == "settled"
                })
            });
            if settled {
                Ok(trace)
            } else {
                Err(trace.to_string())
            }
        })
        .await
        .expect("trace");
        assert_eq!(trace["complete"], true);
        let states: Vec<&Value> = trace["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| &c["after"]["state"])
            .collect();
        assert_eq!(states, [&json!("pending_payment"), &json!("paid")]);
        assert_eq!(trace["changes"][1]["before"]["state"], "pending_payment");
        let topics: Vec<&Value> = trace["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["topic"])
            .collect();
        assert_eq!(topics, [&json!("order.created"), &json!("order.paid")]);

        // --- dead letters found by payload text, one purged
        let found = admin(
            &cluster,
            Request::get("/admin/subscriptions/jobs-hook/dead?q=needle"),
        )
        .await;
        let found = found["dead"].as_array().expect("dead").clone();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["payload"]["text"], NEEDLE_TEXT);
        assert_eq!(found[0]["id"], scene.needle_id.as_str());
        let purge = Request::json(
            Method::POST,
            "/admin/subscriptions/jobs-hook/dead/purge",
            &json!({"ids": [found[0]["id"]]}),
        );
        assert_eq!(admin(&cluster, purge).await["purged"], 1);
        let left = cluster
            .dead_letters("jobs-hook", Some(10))
            .await
            .expect("page");
        assert_eq!(left.dead.len(), 2);
        let all = Request::json(
            Method::POST,
            "/admin/subscriptions/jobs-hook/dead/purge",
            &json!({}),
        );
        assert_eq!(admin(&cluster, all).await["purged"], 2);

        // --- pause, resume, and a reset to the earliest delivers the paid event again
        let pause = Request::json(
            Method::POST,
            "/admin/subscriptions/points/pause",
            &json!({}),
        );
        assert_eq!(admin(&cluster, pause).await["paused"], true);
        let resume = Request::json(
            Method::POST,
            "/admin/subscriptions/points/resume",
            &json!({}),
        );
        assert_eq!(admin(&cluster, resume).await["paused"], false);
        let reset = Request::json(
            Method::POST,
            "/admin/subscriptions/points/reset",
            &json!({"to": "earliest"}),
        );
        admin(&cluster, reset).await;
        poll_until(
            "paid event delivered again",
            Duration::from_secs(10),
            || async {
                let n = points.received().len();
                if n >= 2 {
                    Ok(())
                } else {
                    Err(format!("{n} deliveries"))
                }
            },
        )
        .await
        .expect("redelivered after the reset");
        let bad = cluster
            .client(1)
            .send(Request::json(
                Method::POST,
                "/admin/subscriptions/points/reset",
                &json!({"to": "earliest", "offset": 1}),
            ))
            .await
            .expect("request");
        assert_eq!(bad.status, 400);
    })
    .await;
}
