//! `GET /metrics` after a scripted run: the care-task service on loopback, driven by a
//! real HTTP client (tasks created and assigned, a completion denied, one completed), then
//! scraped like Prometheus does, and every factum metric checked by name, labels and
//! value. One test in this binary: the Prometheus recorder is the process's.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// The samples of a Prometheus text page: `name{labels}` (labels as written) to value.
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_a_scripted_run_shows_every_metric() {
    let served = common::serve().await;
    let (base, client) = (served.base.clone(), served.client.clone());
    let now = chrono::Utc::now();
    served.three_tasks(now, &["T-1", "T-2"]).await;
    let completion =
        |by: &str| json!({ "task_id": "T-1", "completed_by": by, "at": now, "note": null });
    // Ben is not assigned: denied before any event.
    assert_eq!(
        served
            .post("token-ben", "/commands/CompleteTask", completion("ben"))
            .await,
        403
    );
    assert_eq!(
        served
            .post("token-amira", "/commands/CompleteTask", completion("amira"))
            .await,
        200
    );

    // Scraped until the three projections report having caught up with the 6 events.
    let projections = [
        "coordinator_task_list",
        "member_task_history",
        "daily_analytics",
    ];
    let mut seen = BTreeMap::new();
    for _ in 0..250 {
        let response = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4"
        );
        seen = samples(&response.text().await.expect("a page"));
        let caught_up = projections.iter().all(|name| {
            seen.get(&format!("projection_lag_events{{projection_name=\"{name}\"}}"))
                == Some(&0.0)
                && seen.contains_key(&format!(
                    "projection_events_processed_total{{projection_name=\"{name}\",event_type=\"TaskCompleted\"}}"
                ))
        });
        if caught_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let value = |series: &str| {
        *seen
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in the scrape: {seen:#?}"))
    };

    // The store: 6 events by type, 6 appends timed (the denial appended nothing), no
    // conflicts, and its file measured.
    for (event, count) in [
        ("TaskCreated", 3.0),
        ("TaskAssigned", 2.0),
        ("TaskCompleted", 1.0),
    ] {
        assert_eq!(
            value(&format!(
                "event_store_events_appended_total{{aggregate_type=\"Task\",event_type=\"{event}\"}}"
            )),
            count,
            "{event}"
        );
    }
    assert_eq!(
        value("event_store_append_latency_seconds_count{aggregate_type=\"Task\"}"),
        6.0
    );
    assert_eq!(
        value("event_store_append_latency_seconds_bucket{aggregate_type=\"Task\",le=\"+Inf\"}"),
        6.0
    );
    assert!(
        !seen
            .keys()
            .any(|series| series.starts_with("event_store_concurrency_conflicts_total"))
    );
    assert!(value("event_store_size_bytes") > 0.0);

    // The commands, by outcome.
    for (command, outcome, count) in [
        ("CreateTask", "executed", 3.0),
        ("AssignTask", "executed", 2.0),
        ("CompleteTask", "executed", 1.0),
        ("CompleteTask", "denied", 1.0),
    ] {
        assert_eq!(
            value(&format!(
                "factum_commands_total{{command=\"{command}\",aggregate=\"Task\",outcome=\"{outcome}\"}}"
            )),
            count,
            "{command} {outcome}"
        );
    }

    // The projections: what each applied, by type; none behind, none parked.
    for name in projections {
        assert_eq!(
            value(&format!(
                "projection_lag_events{{projection_name=\"{name}\"}}"
            )),
            0.0
        );
        assert_eq!(
            value(&format!(
                "projection_lag_seconds{{projection_name=\"{name}\"}}"
            )),
            0.0
        );
        assert_eq!(
            value(&format!(
                "projection_parked_events{{projection_name=\"{name}\"}}"
            )),
            0.0
        );
        assert_eq!(
            value(&format!(
                "projection_events_processed_total{{projection_name=\"{name}\",event_type=\"TaskCompleted\"}}"
            )),
            1.0,
            "{name}"
        );
    }
    assert_eq!(
        value(
            "projection_events_processed_total{projection_name=\"coordinator_task_list\",event_type=\"TaskCreated\"}"
        ),
        3.0
    );

    // The Grafana dashboard that ships with the example charts these very series: every
    // metric its queries name is in the scrape, and lag and parked events are on top.
    let dashboard: Value = serde_json::from_str(include_str!("../grafana/factum-dashboard.json"))
        .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut charted = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            charted.extend(
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    // Metric names; `projection_name` is a label.
                    .filter(|word| *word != "projection_name")
                    .filter(|word| {
                        ["event_store_", "projection_", "factum_"]
                            .iter()
                            .any(|prefix| word.starts_with(prefix))
                    })
                    .map(str::to_owned),
            );
        }
    }
    assert!(charted.len() >= 9, "{charted:?}");
    for metric in &charted {
        // Conflicts did not happen in this run, so that counter has no series yet.
        if metric == "event_store_concurrency_conflicts_total" {
            continue;
        }
        assert!(
            seen.keys()
                .any(|series| series.starts_with(&format!("{metric}{{"))
                    || series.starts_with(&format!("{metric} "))
                    || series == metric),
            "the dashboard charts {metric}, which the scrape does not have"
        );
    }
    let on_top: Vec<&str> = panels
        .iter()
        .filter(|panel| panel["gridPos"]["y"] == 0)
        .map(|panel| panel["title"].as_str().expect("a title"))
        .collect();
    assert_eq!(
        on_top,
        [
            "Projection lag (events)",
            "Projection lag (seconds)",
            "Parked events"
        ]
    );
    served.service.stop().await.expect("the projections stop");
}
