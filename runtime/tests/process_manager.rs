//! The process-manager building blocks that do not depend on a domain: the causation
//! chain of command metadata and `execute_once` on redelivery.

use factum::envelope::COMMAND_CAUSATION_KEY;
use factum::prelude::*;
use factum::process::{CommandKind, DispatchContext, DispatchError, execute_once};

/// A counter was bumped.
#[event(name = "Bumped")]
#[derive(Debug, Clone, PartialEq)]
pub struct Bumped {}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum CounterEvent {
    Bumped(Bumped),
}

/// Bump a counter; every bump counts, so a repeat is not a no-op by itself.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct Bump {
    #[aggregate_id]
    pub counter_id: String,
    pub refuse: bool,
}

#[derive(Commands, Debug, Clone, PartialEq)]
pub enum CounterCommand {
    Bump(Bump),
}

#[derive(Debug, thiserror::Error)]
#[error("the counter refuses")]
pub struct Refused;

#[derive(Default)]
pub struct Counter {
    bumps: u32,
}

#[aggregate(events = CounterEvent, commands = CounterCommand, error = Refused)]
impl Counter {
    #[handle]
    fn bump(&self, command: Bump) -> Result<Bumped, Refused> {
        if command.refuse {
            return Err(Refused);
        }
        Ok(Bumped {})
    }

    #[apply]
    fn bumped(&mut self, _: &Bumped) {
        self.bumps += 1;
    }
}

fn context(metadata: CommandMetadata, redelivery: bool) -> DispatchContext {
    DispatchContext {
        instance: "i-1".into(),
        metadata,
        redelivery,
        kind: CommandKind::Step,
    }
}

#[tokio::test]
async fn a_command_caused_by_an_event_carries_the_chain_into_its_events() {
    let store = MemoryStore::new();
    let counters = Repository::<Counter, _>::new(store.clone());
    let correlation_id = factum::uuid::Uuid::now_v7();
    counters
        .execute_with(
            Bump {
                counter_id: "a".into(),
                refuse: false,
            },
            CommandMetadata::new().correlation_id(correlation_id),
        )
        .await
        .unwrap();
    let trigger = store
        .read_stream("Counter-a", 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        trigger.metadata.extra.get(COMMAND_CAUSATION_KEY),
        None,
        "an outside command has no causation"
    );

    let metadata = CommandMetadata::caused_by(&trigger);
    assert_eq!(metadata.correlation_id, Some(correlation_id));
    assert_eq!(metadata.causation_id, Some(trigger.event_id));
    counters
        .execute_with(
            Bump {
                counter_id: "a".into(),
                refuse: false,
            },
            metadata.clone(),
        )
        .await
        .unwrap();
    let effect = store
        .read_stream("Counter-a", 2, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(effect.metadata.correlation_id, Some(correlation_id));
    assert_eq!(effect.metadata.causation_id, Some(metadata.command_id));
    assert_eq!(
        effect.metadata.extra.get(COMMAND_CAUSATION_KEY),
        Some(&serde_json::Value::String(trigger.event_id.to_string()))
    );
}

#[tokio::test]
async fn execute_once_does_not_run_a_redelivered_command_twice() {
    let store = MemoryStore::new();
    let counters = Repository::<Counter, _>::new(store.clone());
    let metadata = CommandMetadata::new();
    let bump = || Bump {
        counter_id: "b".into(),
        refuse: false,
    };

    execute_once(&counters, bump(), &context(metadata.clone(), false))
        .await
        .unwrap();
    // The same command id again, as after a crash before its outcome was recorded.
    execute_once(&counters, bump(), &context(metadata.clone(), true))
        .await
        .unwrap();
    assert_eq!(counters.load("b").await.unwrap().state.bumps, 1);

    // Another command id is another command.
    execute_once(&counters, bump(), &context(CommandMetadata::new(), true))
        .await
        .unwrap();
    assert_eq!(counters.load("b").await.unwrap().state.bumps, 2);

    let refused = execute_once(
        &counters,
        Bump {
            counter_id: "b".into(),
            refuse: true,
        },
        &context(CommandMetadata::new(), false),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, DispatchError::Rejected { command, reason } if command == "Bump" && reason == "the counter refuses"),
        "{refused:?}"
    );
}
