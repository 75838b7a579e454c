//! The LISTEN/NOTIFY notifier: one listening connection per store wakes the followers
//! waiting in `EventStore::wait_for_events`.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::store::{LISTENER_HEARTBEAT, LISTENER_MAX_BACKOFF, POLL_INTERVAL};

/// What the listening connection knows, shared with waiting followers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Notified {
    /// Whether the listening connection is up: every commit since the newest position
    /// it read at `LISTEN` time is then announced to it.
    pub(super) listening: bool,
    /// The highest position known to have committed.
    pub(super) position: u64,
}

/// The store's one listening connection (opened on the first wait, re-opened after a
/// failure) and the highest position it was told about, fanned out to every waiter
/// through a `watch` channel.
pub(super) struct Notifier {
    pub(super) pg: tokio_postgres::Config,
    /// `LISTEN "<channel>"`.
    pub(super) listen: String,
    /// `SELECT max(position) ..`, read right after `LISTEN`: commits before it are in
    /// the answer, commits after it are announced.
    pub(super) newest: String,
    pub(super) state: watch::Sender<Notified>,
    /// The listening task, if one was started; restarted when it has ended (its runtime
    /// shut down).
    pub(super) task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    pub(super) fn new(pg: tokio_postgres::Config, listen: String, newest: String) -> Self {
        Self {
            pg,
            listen,
            newest,
            state: watch::Sender::new(Notified::default()),
            task: Mutex::new(None),
        }
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
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *task = Some(runtime.spawn(listen_forever(Arc::downgrade(self))));
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // The last handle of the store is gone: close the listening connection.
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
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
    // The connection delivers notifications only while it is polled: this half polls it
    // (and so also carries the client's queries), the other half talks through the
    // client.
    let receiving = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    let Some(notifier) = notifier.upgrade() else {
                        return Ok(());
                    };
                    // A payload that is not a position (a stranger's NOTIFY on our
                    // channel) still means "look again".
                    match notification.payload().parse::<u64>() {
                        Ok(position) => notifier.raise(position),
                        Err(_) => notifier.state.send_modify(|_| {}),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    };
    let talking = async {
        client.batch_execute(listen).await?;
        let row = client.query_one(newest, &[]).await?;
        let position: Option<i64> = row.try_get(0)?;
        let Some(strong) = notifier.upgrade() else {
            return Ok(());
        };
        strong.state.send_modify(|state| {
            state.listening = true;
            state.position = state
                .position
                .max(position.and_then(|p| u64::try_from(p).ok()).unwrap_or(0));
        });
        drop(strong);
        loop {
            tokio::time::sleep(LISTENER_HEARTBEAT).await;
            match tokio::time::timeout(LISTENER_HEARTBEAT, client.simple_query("")).await {
                Ok(result) => {
                    result?;
                }
                Err(_) => {
                    tracing::warn!("factum: the PostgreSQL listening connection stopped answering");
                    return Ok(());
                }
            }
        }
    };
    tokio::select! {
        ended = receiving => ended,
        ended = talking => ended,
    }
}
