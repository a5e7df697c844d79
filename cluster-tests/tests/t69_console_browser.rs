//! The operator console in a real browser (headless Chromium over WebDriver), opened on a
//! follower of three nodes: sign in with the admin token, open an order's story and see its paid
//! event delivered, find a dead letter by payload text, redrive it and see the webhook receive
//! it. Every view is captured as a PNG under the test's target tmp dir (`console-screenshots/`),
//! and any JavaScript error the page records fails the test.

use std::path::PathBuf;
use std::time::Duration;

use cluster::scene::{JOBS_GROUP, POINTS_GROUP};
use cluster::{within, Chromedriver, Cluster, ClusterOptions, OperatorScene, ReceiverOptions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;

/// How long one element or condition may take to appear (polls run every 2 s).
const APPEAR: Duration = Duration::from_secs(20);

/// Where the screenshots go.
fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("writing the screenshot");
    eprintln!("    screenshot {}", path.display());
}

/// Waits until the JavaScript expression `condition` is true in the page.
async fn wait_until(browser: &Client, what: &str, condition: &str) {
    let script = format!("return Boolean({condition});");
    let deadline = tokio::time::Instant::now() + APPEAR;
    loop {
        let holds = browser.execute(&script, vec![]).await.expect("script runs");
        if holds == Value::Bool(true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} ({condition})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Clicks the element matching `css`.
async fn click(browser: &Client, css: &str, what: &str) {
    let element = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {what}: {e}"));
}

/// The text of the first element matching `css`, or "" when none does.
fn text_of(css: &str) -> String {
    format!("(document.querySelector({css:?}) || {{textContent: ''}}).textContent")
}

async fn open_view(browser: &Client, hash: &str, ready: &str) {
    browser
        .execute(&format!("location.hash = {hash:?};"), vec![])
        .await
        .expect("navigate");
    wait_until(browser, hash, ready).await;
}

async fn story(browser: &Client, console: &str, scene: &OperatorScene, token: &str) {
    eprintln!("--- sign in with the admin token");
    browser.goto(console).await.expect("open the console");
    let field = browser
        .wait()
        .at_most(APPEAR)
        .for_element(Locator::Css("#token"))
        .await
        .expect("the sign-in form");
    wait_until(
        browser,
        "the sign-in form shown",
        "!document.getElementById('login').hidden",
    )
    .await;
    screenshot(browser, "0-sign-in").await;
    field.send_keys(token).await.expect("type the token");
    click(browser, "#login-button", "sign-in button").await;
    wait_until(
        browser,
        "three members with a leader",
        "document.querySelectorAll('#cluster-members tbody tr').length === 3 \
         && document.querySelector('#cluster-members .badge.info')",
    )
    .await;
    // A few polls, so the rate charts have points.
    tokio::time::sleep(Duration::from_secs(5)).await;
    screenshot(browser, "1-cluster").await;

    eprintln!("--- the order's story: its paid event delivered to points");
    let delivered = format!(
        "{}.includes('delivered')",
        text_of(&format!(
            ".message[data-topic='order.paid'] tr[data-key='{POINTS_GROUP}']"
        ))
    );
    open_view(browser, &format!("#order/{}", scene.order_id), &delivered).await;
    wait_until(
        browser,
        "the timeline from pending_payment to paid",
        &format!(
            "{}.includes('pending_payment → paid')",
            text_of("#story-timeline")
        ),
    )
    .await;
    wait_until(
        browser,
        "the paid event's ack time",
        &format!(
            "!['', '—'].includes({}.trim())",
            text_of(&format!(
                ".message[data-topic='order.paid'] tr[data-key='{POINTS_GROUP}'] td:nth-child(5)"
            ))
        ),
    )
    .await;
    screenshot(browser, "2-order-story").await;

    eprintln!("--- stock and queues");
    open_view(
        browser,
        "#stock",
        "document.querySelector(\"#stock-table tr[data-key='A']\")",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    screenshot(browser, "3-stock").await;
    open_view(
        browser,
        "#queues",
        &format!("document.querySelector(\"#subs-table tr[data-key='{JOBS_GROUP}']\")"),
    )
    .await;
    screenshot(browser, "4-queues").await;

    eprintln!("--- find the dead letter by payload text and redrive it");
    open_view(
        browser,
        "#dead",
        &format!("document.getElementById('dead-group').value === '{JOBS_GROUP}' && document.querySelectorAll('#dead-table tbody tr[data-key]').length === 3"),
    )
    .await;
    let search = browser
        .find(Locator::Css("#dead-query"))
        .await
        .expect("search field");
    search.send_keys("needle").await.expect("type the search");
    click(browser, "#dead-search", "search button").await;
    let needle_row = format!("#dead-table tr[data-key='{}']", scene.needle_id);
    wait_until(
        browser,
        "only the needle found",
        &format!(
            "document.querySelectorAll('#dead-table tbody tr[data-key]').length === 1 \
             && document.querySelector({needle_row:?})"
        ),
    )
    .await;
    screenshot(browser, "5-dead-letters").await;
    scene.jobs.set_options(ReceiverOptions::default());
    click(
        browser,
        &format!("{needle_row} input.pick"),
        "the needle's checkbox",
    )
    .await;
    click(browser, "#dead-redrive-selected", "redrive button").await;
    wait_until(
        browser,
        "the redrive's count",
        &format!("{}.includes('Redriven: 1')", text_of("#dead-result")),
    )
    .await;
    scene
        .jobs
        .wait_acked_id(&scene.needle_id, APPEAR)
        .await
        .expect("the redriven letter reaches the webhook");
    wait_until(
        browser,
        "the needle gone from the dead letters",
        &format!("!document.querySelector({needle_row:?})"),
    )
    .await;
    screenshot(browser, "6-dead-letters-after-redrive").await;

    eprintln!("--- timers");
    open_view(
        browser,
        "#timers",
        &format!(
            "document.querySelectorAll('#timer-figures .figure').length > 0 \
             && document.querySelector(\"#timer-recent-closes tr[data-key='{}']\")",
            scene.closed_order_id
        ),
    )
    .await;
    wait_until(
        browser,
        "the cancelled order among the recent closes",
        &format!(
            "{}.includes('cancelled')",
            text_of(&format!(
                "#timer-recent-closes tr[data-key='{}']",
                scene.closed_order_id
            ))
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    screenshot(browser, "7-timers").await;

    eprintln!("--- no JavaScript error on the way");
    let errors = browser
        .execute("return window.__consoleErrors;", vec![])
        .await
        .expect("read the page's errors");
    assert_eq!(errors, Value::Array(vec![]), "JavaScript errors: {errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t69_console_in_a_browser_through_a_follower() {
    std::fs::create_dir_all(screenshot_dir()).expect("screenshot dir");
    let cluster = Cluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let token = ClusterOptions::default()
        .admin_token
        .expect("the fixture sets an admin token");
    within(Duration::from_secs(240), async {
        let scene = OperatorScene::set_up(&cluster).await.expect("scene");
        let follower = cluster.followers().await.expect("followers")[0];
        let console = format!("{}/console", cluster.api(follower));
        let driver = Chromedriver::start().await.expect("chromedriver");
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(Chromedriver::capabilities(1400, 900))
            .connect(driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "a browser session: {e}\n{}",
                    std::fs::read_to_string(driver.log_path()).unwrap_or_default()
                )
            });
        // The session ends (and the browser quits) whatever the story's outcome.
        let outcome = tokio::spawn({
            let browser = browser.clone();
            async move { story(&browser, &console, &scene, &token).await }
        })
        .await;
        let _ = browser.close().await;
        drop(driver);
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    })
    .await;
}
