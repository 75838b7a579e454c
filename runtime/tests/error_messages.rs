//! Each error's cause is printed once: a message names its own level and its cause is
//! its `source()`, so a reporter that walks the chain (`factum::error::Report`,
//! `ProjectionError::message`, anyhow's `{:#}`) shows every cause exactly once.

use factum::error::Report;
use factum::prelude::*;
use factum::projection::ProjectionError;
use factum::store::MemoryStore;
use factum::testing::assert_each_cause_once;

#[event(name = "Ticked", version = 1)]
#[derive(Debug, PartialEq)]
pub struct Ticked {
    pub n: u64,
}

#[derive(Events, Debug, PartialEq)]
pub enum CounterEvent {
    Ticked(Ticked),
}

#[command]
pub struct Tick {
    #[aggregate_id]
    pub id: String,
}

#[derive(Commands)]
pub enum CounterCommand {
    Tick(Tick),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Default, Debug)]
pub struct Counter;

#[aggregate(name = "Counter", events = CounterEvent, commands = CounterCommand, error = Never)]
impl Counter {
    #[handle]
    fn tick(&self, _command: Tick) -> Result<Ticked, Never> {
        Ok(Ticked { n: 1 })
    }

    #[apply]
    fn ticked(&mut self, _event: &Ticked) {}
}

fn occurrences(text: &str, part: &str) -> usize {
    text.matches(part).count()
}

#[tokio::test]
async fn a_decode_error_names_each_cause_once_in_every_reporter() {
    let store = MemoryStore::new();
    // Version 0 was never a version of `Ticked`: no upcast path reaches it.
    store
        .append(
            "Counter-c-1",
            "Counter",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "Ticked",
                0,
                serde_json::value::to_raw_value(&serde_json::json!({ "n": 1 })).unwrap(),
                Metadata::default(),
            )],
        )
        .await
        .unwrap();
    let error = Repository::<Counter, _>::new(store)
        .load("c-1")
        .await
        .unwrap_err();
    assert_each_cause_once(&error);
    let report = Report(&error).to_string();
    assert_eq!(
        report,
        "stream `Counter-c-1` version 1 (position 1): cannot decode event `Ticked` version 0: \
         no upcast path leads from this version (oldest readable: 1)"
    );
    let projection = ProjectionError::from(error).message();
    assert_eq!(
        projection, report,
        "ProjectionError::message prints it once too"
    );
    assert_eq!(occurrences(&projection, "no upcast path"), 1);
}

#[tokio::test]
async fn store_and_repository_errors_name_each_cause_once() {
    let store = MemoryStore::new();
    let mut twice = vec![NewEvent::new(
        "Ticked",
        1,
        serde_json::value::to_raw_value(&serde_json::json!({ "n": 1 })).unwrap(),
        Metadata::default(),
    )];
    twice.push(twice[0].clone());
    let repeated = store
        .append("Counter-c-2", "Counter", ExpectedVersion::Any, twice)
        .await
        .unwrap_err();
    assert_each_cause_once(&repeated);
    let text = repeated.to_string();
    assert!(
        text.contains("appears twice in the batch") && !text.contains("already stored"),
        "{text}"
    );

    let backend = StoreError::Backend(Box::new(std::io::Error::other("disk full")));
    assert_each_cause_once(&backend);
    assert_eq!(
        Report(&backend).to_string(),
        "store backend failed: disk full"
    );
    let wrapped = RepositoryError::<Never>::from(backend);
    assert_each_cause_once(&wrapped);
    assert_eq!(occurrences(&Report(&wrapped).to_string(), "disk full"), 1);
}
