//! The web console in a real browser: the care-task service on loopback after a scripted
//! run over HTTP, each console page opened in headless Chromium (the Debian package,
//! which `scripts/provision.sh` installs) as an operator, a coordinator and a care-team
//! member, and what the page shows once its scripts ran checked through the DevTools
//! protocol — the live tail while a command is sent. A screenshot of each page is kept
//! under `target/console-screenshots/`.
//!
//! Needs `chromium` on the `PATH` (or `FACTUM_CHROMIUM`); without it the test fails.

mod browser;
mod common;

use factum::store::EventStore;
use serde_json::json;

use browser::{Browser, screenshots};

/// The console at `view` for the holder of `token` (the token in the fragment, which
/// never reaches a server).
fn console(base: &str, token: &str, view: &str) -> String {
    format!("{base}/console/#token={token}&view={view}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_shows_streams_events_traces_projections_and_the_live_tail() {
    let served = common::serve().await;
    let (base, store) = (served.base.clone(), served.store.clone());
    let now = chrono::Utc::now();
    served.three_tasks(now, &["T-1"]).await;
    assert_eq!(
        store.head().await.expect("reads").expect("events").position,
        4
    );
    let shots = screenshots();
    let mut browser = Browser::start().await;

    // Projections, for an operator: each caught up at the head, its buttons enabled. The
    // page refreshes itself, so it is read once every lag shows 0.
    let page = browser
        .open(&console(&base, "token-olga", "projections"))
        .await;
    browser
        .wait_for(
            &page,
            "document.querySelectorAll('#projections td.lag.caught-up').length === 3",
        )
        .await;
    browser
        .screenshot(&page, &shots.join("projections.png"))
        .await;
    assert_eq!(
        browser.texts(&page, "#who").await,
        ["operator:olga (operator)"]
    );
    assert_eq!(browser.texts(&page, "#head").await, ["head of the log: 4"]);
    let rows = browser.texts(&page, "#projections tbody tr").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, name) in rows.iter().zip([
        "coordinator_task_list",
        "member_task_history",
        "daily_analytics",
    ]) {
        assert!(
            row.starts_with(&format!("{name}1active40")) && row.ends_with("0Rebuild"),
            "{row}"
        );
    }
    assert!(
        !browser
            .attributes(&page, "#projections button.rebuild")
            .await
            .contains_key("disabled")
    );
    assert_eq!(browser.texts(&page, "#parked").await, ["none"]);

    // Streams, and a search.
    let page = browser.open(&console(&base, "token-olga", "streams")).await;
    browser
        .wait_for(
            &page,
            "document.querySelectorAll('#streams tbody tr').length === 3",
        )
        .await;
    browser.screenshot(&page, &shots.join("streams.png")).await;
    assert_eq!(
        browser.texts(&page, "#streams tbody tr").await,
        ["Task-T-1Task2", "Task-T-2Task1", "Task-T-3Task1"]
    );
    let page = browser
        .open(&console(&base, "token-olga", "streams?contains=T-2"))
        .await;
    browser
        .wait_for(&page, "document.querySelector('#streams tbody tr')")
        .await;
    assert_eq!(
        browser.texts(&page, "#streams tbody tr").await,
        ["Task-T-2Task1"]
    );

    // One event whole: its payload, read through GET /streams/{id}.
    let page = browser
        .open(&console(&base, "token-olga", "stream/Task-T-1/1"))
        .await;
    browser
        .wait_for(&page, "document.querySelector('#payload')")
        .await;
    browser.screenshot(&page, &shots.join("event.png")).await;
    assert_eq!(
        browser.texts(&page, "#event-title").await,
        ["TaskCreated v1"]
    );
    let payload = browser.texts(&page, "#payload").await.concat();
    assert!(payload.contains(r#""title": "Task T-1""#), "{payload}");

    // The trace of the assignment: its command, its event, the projections that applied
    // it. (The pages' reads of streams are in the log by now too: the access record.)
    let events = store.read_all(0, 100).await.expect("reads");
    let assigned = events
        .iter()
        .find(|event| event.name == "TaskAssigned")
        .expect("the assignment");
    let correlation = assigned.metadata.correlation_id.expect("a correlation");
    let command = assigned.metadata.causation_id.expect("a command");
    let page = browser
        .open(&console(
            &base,
            "token-olga",
            &format!("trace/{correlation}"),
        ))
        .await;
    browser
        .wait_for(&page, "document.querySelector('#trace li.event')")
        .await;
    browser.screenshot(&page, &shots.join("trace.png")).await;
    assert_eq!(
        browser.texts(&page, "#trace li.event").await,
        [
            "4 TaskAssigned in Task-T-1 v2 → coordinator_task_list, member_task_history, daily_analytics"
        ]
    );
    let tree = browser.texts(&page, "#trace li.command").await.concat();
    assert!(
        tree.starts_with(&format!("command {command} by care_coordinator:dana")),
        "{tree}"
    );

    // The live tail: the log's events, newest first, over SSE; then one more, live.
    let page = browser.open(&console(&base, "token-olga", "tail")).await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#tail li[data-position=\"4\"]')",
        )
        .await;
    let complete = json!({ "task_id": "T-1", "completed_by": "amira", "at": now, "note": null });
    assert_eq!(
        served
            .post("token-amira", "/commands/CompleteTask", complete)
            .await,
        200
    );
    let completed = store
        .read_all(0, 100)
        .await
        .expect("reads")
        .into_iter()
        .find(|event| event.name == "TaskCompleted")
        .expect("the completion")
        .position;
    browser
        .wait_for(
            &page,
            &format!("document.querySelector('#tail li[data-position=\"{completed}\"]')"),
        )
        .await;
    browser.screenshot(&page, &shots.join("tail.png")).await;
    let tail = browser.texts(&page, "#tail li").await;
    assert!(
        tail[0].contains("TaskCompleted in Task-T-1 v3"),
        "the newest first: {tail:?}"
    );
    assert!(
        tail.iter()
            .any(|line| line.contains("TaskCreated in Task-T-1 v1")),
        "{tail:?}"
    );

    // A coordinator may look but not act; a care-team member may not look.
    let page = browser
        .open(&console(&base, "token-dana", "projections"))
        .await;
    browser
        .wait_for(
            &page,
            "document.querySelector('#projections button.rebuild')",
        )
        .await;
    assert_eq!(
        browser.texts(&page, "#who").await,
        ["care_coordinator:dana"]
    );
    assert!(
        browser
            .attributes(&page, "#projections button.rebuild")
            .await
            .contains_key("disabled")
    );
    let page = browser
        .open(&console(&base, "token-amira", "projections"))
        .await;
    browser
        .wait_for(&page, "!document.querySelector('#login').hidden")
        .await;
    let status = browser.texts(&page, "#status").await.concat();
    assert!(status.starts_with("403 "), "{status}");

    // Rebuild behind authorization, over the API the buttons call: accepted, it runs on
    // the server on its own, and the projections page shows how it ended.
    let rebuild = "/console/api/projections/daily_analytics/rebuild";
    assert_eq!(served.post("token-dana", rebuild, json!({})).await, 403);
    assert_eq!(served.post("token-olga", rebuild, json!({})).await, 202);
    let page = browser
        .open(&console(&base, "token-olga", "projections"))
        .await;
    let finished =
        "document.querySelector('tr[data-projection=\"daily_analytics\"] td.rebuild-status')";
    browser
        .wait_for(
            &page,
            &format!("({finished} || {{}}).textContent?.startsWith('rebuilt: ')"),
        )
        .await;
    browser.screenshot(&page, &shots.join("rebuilt.png")).await;
    let rebuilt = browser
        .texts(
            &page,
            "tr[data-projection=\"daily_analytics\"] td.rebuild-status",
        )
        .await;
    assert_eq!(
        rebuilt,
        ["rebuilt: 4 events applied (by operator:olga)"],
        "the whole log replayed"
    );
    // A finished rebuild may run again.
    assert_eq!(served.post("token-olga", rebuild, json!({})).await, 202);
    drop(browser);
    served.service.stop().await.expect("the projections stop");
}
