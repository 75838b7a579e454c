//! The LISTEN/NOTIFY notifier: one listening connection per store wakes the followers
//! waiting in `EventStore::wait_for_events`, and one announcing connection tells every
//! listener (of this process and others) about the store's concurrent appends after they
//! commit.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::store::{LISTENER_HEARTBEAT, LISTENER_MAX_BACKOFF, POLL_INTERVAL};

/// The shortest pause between two announcements: how long a follower in another process
/// may wait at most, beyond the round trips, to hear of a commit.
const ANNOUNCE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// What the listening connection knows, shared with waiting followers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Notified {
    /// Whether the listening connection is up: every commit since the newest position
    /// it read at `LISTEN` time is then announced to it.
    pub(super) listening: bool,
    /// The newest settled position known: every event at or below it that will ever
    /// commit is readable.
    pub(super) position: u64,
}

/// The store's one listening connection (opened on the first wait, re-opened after a
/// failure) and the highest position it was told about, fanned out to every waiter
/// through a `watch` channel.
pub(super) struct Notifier {
    pub(super) pg: tokio_postgres::Config,
    /// `LISTEN "<channel>"`.
    pub(super) listen: String,
    /// The newest settled position and the newest position: read right after `LISTEN`
    /// (commits before it are in the answer, commits after it are announced) and after
    /// every announcement.
    pub(super) newest: String,
    /// The notification channel the announcements go to.
    pub(super) channel: String,
    pub(super) state: watch::Sender<Notified>,
    /// The listening task, if one was started; restarted when it has ended (its runtime
    /// shut down).
    pub(super) task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The newest position appended concurrently by this store and committed, for the
    /// announcing task to send (the newest value only: announcements coalesce).
    announced: watch::Sender<u64>,
    /// The announcing task, started by the first announcement.
    announcer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    pub(super) fn new(
        pg: tokio_postgres::Config,
        listen: String,
        newest: String,
        channel: String,
    ) -> Self {
        Self {
            pg,
            listen,
            newest,
            channel,
            state: watch::Sender::new(Notified::default()),
            task: Mutex::new(None),
            announced: watch::Sender::new(0),
            announcer: Mutex::new(None),
        }
    }

    /// Announces, after its commit, an append that ran concurrently with others (its
    /// transaction could not `NOTIFY`: PostgreSQL serialises the commits of notifying
    /// transactions). Returns at once; the announcing task sends it.
    pub(super) fn announce(self: &Arc<Self>, position: u64) {
        self.announced.send_if_modified(|newest| {
            let newer = position > *newest;
            *newest = (*newest).max(position);
            newer
        });
        keep_running(&self.announcer, || {
            announce_forever(Arc::downgrade(self), self.announced.subscribe())
        });
    }

    /// The newest settled position known.
    pub(super) fn settled(&self) -> u64 {
        self.state.borrow().position
    }

    /// Raises the known position (never lowers it), waking waiters.
    pub(super) fn raise(&self, position: u64) {
        self.state.send_if_modified(|state| {
            let newer = position > state.position;
            state.position = state.position.max(position);
            newer
        });
    }

    /// Starts the listening task unless it runs. Outside a tokio runtime there is none,
    /// and waiters poll.
    pub(super) fn ensure_listening(self: &Arc<Self>) {
        keep_running(&self.task, || listen_forever(Arc::downgrade(self)));
    }
}

/// Spawns the task `start` makes into `slot` unless one runs there (a task ends when its
/// runtime shuts down). Outside a tokio runtime none is started.
fn keep_running<F>(slot: &Mutex<Option<tokio::task::JoinHandle<()>>>, start: impl FnOnce() -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut task = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if task.as_ref().is_some_and(|task| !task.is_finished()) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    *task = Some(runtime.spawn(start()));
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // The last handle of the store is gone: close the listening and announcing
        // connections.
        for task in [&mut self.task, &mut self.announcer] {
            if let Some(task) = task
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                task.abort();
            }
        }
    }
}

/// The announcing task: one connection, re-opened (with a growing pause) when it fails,
/// that sends `pg_notify('<channel>', '<position>')` for the newest announced position
/// whenever it rises, until the store is dropped. Its transactions commit without waiting
/// for the disk (`synchronous_commit = off`): a lost announcement costs a listener no more
/// than its wait, and the appends it announces are durable already.
async fn announce_forever(notifier: Weak<Notifier>, mut announced: watch::Receiver<u64>) {
    let mut backoff = POLL_INTERVAL;
    loop {
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        let (pg, channel) = (strong.pg.clone(), strong.channel.clone());
        drop(strong);
        match announce_once(&pg, &channel, &mut announced).await {
            // The store is gone.
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(error = %crate::error::Report(&error), "factum: the PostgreSQL announcing connection failed; re-opening it");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTENER_MAX_BACKOFF);
    }
}

/// One announcing connection, until it fails or the store is dropped (`Ok`).
async fn announce_once(
    pg: &tokio_postgres::Config,
    channel: &str,
    announced: &mut watch::Receiver<u64>,
) -> Result<(), tokio_postgres::Error> {
    let mut pg = pg.clone();
    // Operators tell it apart from the listening connection it was configured like.
    if let Some(schema) = pg
        .get_application_name()
        .and_then(|name| name.strip_prefix("factum listener "))
    {
        pg.application_name(format!("factum announcer {schema}"));
    }
    let (client, connection) = pg.connect(NoTls).await?;
    let connection = tokio::spawn(connection);
    let sending = async {
        client.batch_execute("SET synchronous_commit = off").await?;
        let statement = client.prepare("SELECT pg_notify($1, $2)").await?;
        // Whatever was announced before this connection opened is sent once more.
        announced.mark_changed();
        while announced.changed().await.is_ok() {
            let position = announced.borrow_and_update().to_string();
            client.execute(&statement, &[&channel, &position]).await?;
            // A notification is a transaction of its own: under a stream of appends, one
            // per interval carries them all (the newest position; listeners ask for the
            // settled head anyway).
            tokio::time::sleep(ANNOUNCE_INTERVAL).await;
        }
        Ok(())
    };
    let ended = sending.await;
    connection.abort();
    ended
}

/// The listening task: holds one connection that `LISTEN`s, re-opening it (with a
/// growing pause) whenever it fails, until the store is dropped.
pub(super) async fn listen_forever(notifier: Weak<Notifier>) {
    let mut backoff = POLL_INTERVAL;
    loop {
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        let (pg, listen, newest) = (
            strong.pg.clone(),
            strong.listen.clone(),
            strong.newest.clone(),
        );
        drop(strong);
        let started = tokio::time::Instant::now();
        let ended = listen_once(&notifier, &pg, &listen, &newest).await;
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        // Waiters fall back to polling until the connection is back.
        strong.state.send_modify(|state| state.listening = false);
        drop(strong);
        if let Err(error) = ended {
            tracing::warn!(error = %crate::error::Report(&error), "factum: the PostgreSQL listening connection failed; re-opening it");
        }
        if started.elapsed() > LISTENER_HEARTBEAT {
            backoff = POLL_INTERVAL;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTENER_MAX_BACKOFF);
    }
}

/// One listening connection, until it fails (or the store is dropped).
pub(super) async fn listen_once(
    notifier: &Weak<Notifier>,
    pg: &tokio_postgres::Config,
    listen: &str,
    newest: &str,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = pg.connect(NoTls).await?;
    let announced = tokio::sync::Notify::new();
    // The connection delivers notifications only while it is polled: this half polls it
    // (and so also carries the client's queries), the other half talks through the
    // client.
    let receiving = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                // An announced position may not be settled yet (an append that took a
                // lower one may still be running), and a stranger's NOTIFY on our channel
                // carries anything: either way, it means "look again".
                Some(Ok(AsyncMessage::Notification(_))) => announced.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    };
    let talking = async {
        client.batch_execute(listen).await?;
        loop {
            // The newest settled position, also the heartbeat: a connection that stops
            // answering is re-opened.
            let Ok(row) =
                tokio::time::timeout(LISTENER_HEARTBEAT, client.query_one(newest, &[])).await
            else {
                tracing::warn!("factum: the PostgreSQL listening connection stopped answering");
                return Ok(());
            };
            let row = row?;
            let settled: Option<i64> = row.try_get(0)?;
            let last: Option<i64> = row.try_get(1)?;
            let Some(strong) = notifier.upgrade() else {
                return Ok(());
            };
            strong.state.send_if_modified(|state| {
                let settled = settled.and_then(|p| u64::try_from(p).ok()).unwrap_or(0);
                let changed = !state.listening || settled > state.position;
                state.listening = true;
                state.position = state.position.max(settled);
                changed
            });
            drop(strong);
            // Events past the settled position wait for appends still running, whose
            // announcement may never come (a process that died, or a transaction of
            // someone else holding the oldest running id): look again soon.
            let wait = if settled < last {
                POLL_INTERVAL
            } else {
                LISTENER_HEARTBEAT
            };
            let _ = tokio::time::timeout(wait, announced.notified()).await;
        }
    };
    tokio::select! {
        ended = receiving => ended,
        ended = talking => ended,
    }
}
