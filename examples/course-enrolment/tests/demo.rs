//! The course-enrolment job on a SQLite file, run twice: each run offers its courses,
//! seats the students its rules allow, and gives a course's last seat to exactly one of
//! two racers; the second run adds to the first's history.

use factum::prelude::*;
use factum::sqlite::SqliteStore;
use factum::store::decision::{DecisionStore, Query, QueryItem};

#[factum::tokio::test(flavor = "current_thread", crate = "factum::tokio")]
async fn the_job_runs_twice_on_one_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("course-enrolment.sqlite3");
    factum_example_course_enrolment::demo::run(&db)
        .await
        .expect("the first run");
    let first = SqliteStore::open(&db)
        .await
        .expect("open")
        .head()
        .await
        .expect("a head")
        .expect("events")
        .position;
    factum_example_course_enrolment::demo::run(&db)
        .await
        .expect("the second run");
    let store = SqliteStore::open(&db).await.expect("open");
    for run in [1, first + 1] {
        let rust = Query::new([QueryItem::names(["StudentSubscribed"])
            .with_tags([Tag::new("course", format!("rust-{run}"))])]);
        let seated = store.read_matching(&rust, 0).await.expect("read");
        assert_eq!(
            seated.events.len(),
            3,
            "run {run}: grace, the racer who won, and the racer who lost once the course grew"
        );
    }
}
