//! A pool of handlers that processes changes concurrently, in order for each key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::panic::{resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::change::Change;

/// What a pool did, returned by [`HandlerPool::finish`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Changes whose handler returned.
    pub handled: u64,
    /// Changes whose handler panicked (the pool goes on).
    pub panicked: u64,
}

/// Runs a handler on changes, up to `concurrency` at a time, keeping the order of the
/// changes to one key.
///
/// Changes with the same [`key`](Change::key) are handled one after the other, in the order
/// submitted; changes to other keys are handled meanwhile, so one slow handler holds up
/// its own key only. At most `max_pending` changes are queued or running:
/// [`submit`](HandlerPool::submit) waits for room past that, which in turn slows the
/// listener down (backpressure, no loss). Must be created inside a Tokio runtime.
///
/// ```no_run
/// use column_notify_listener::{Change, Event, HandlerPool, Listener};
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let mut listener = Listener::connect("postgres:///app", ["appointments_canceled_changed"]).await?;
/// let pool = HandlerPool::new(8, 1000, |change: Change| async move {
///     println!("handling {}", change.id);
/// });
/// while let Some(event) = listener.recv().await {
///     match event {
///         Event::Change { change, .. } => pool.submit(*change).await,
///         other => println!("{other:?}"),
///     }
/// }
/// let stats = pool.finish().await;
/// println!("{} handled", stats.handled);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct HandlerPool<T = Value> {
    jobs: mpsc::UnboundedSender<Job<T>>,
    room: Arc<Semaphore>,
    dispatcher: JoinHandle<PoolStats>,
}

#[derive(Debug)]
struct Job<T> {
    key: String,
    change: Change<T>,
    _room: OwnedSemaphorePermit,
}

impl<T: Send + 'static> HandlerPool<T> {
    /// A pool running `handler` on up to `concurrency` changes at a time, with at most
    /// `max_pending` changes queued or running (each is at least 1).
    pub fn new<F, Fut>(concurrency: usize, max_pending: usize, handler: F) -> Self
    where
        F: Fn(Change<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (jobs, queue) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch(queue, concurrency.max(1), Arc::new(handler)));
        HandlerPool {
            jobs,
            room: Arc::new(Semaphore::new(max_pending.max(1))),
            dispatcher,
        }
    }

    /// Queues a change; waits while `max_pending` changes are queued or running.
    pub async fn submit(&self, change: Change<T>) {
        let room = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .expect("the pool never closes its semaphore");
        let job = Job {
            key: change.key(),
            change,
            _room: room,
        };
        if self.jobs.send(job).is_err() {
            unreachable!("the dispatcher runs as long as the pool exists");
        }
    }

    /// Waits until every submitted change has been handled, and says how it went.
    pub async fn finish(self) -> PoolStats {
        drop(self.jobs);
        match self.dispatcher.await {
            Ok(stats) => stats,
            Err(error) if error.is_panic() => resume_unwind(error.into_panic()),
            Err(_) => PoolStats::default(),
        }
    }
}

/// Per-key queues: a key is `busy` while its handler runs, and `ready` while it has
/// waiting changes and is not busy.
struct Queues<T> {
    waiting: HashMap<String, VecDeque<Job<T>>>,
    busy: HashSet<String>,
    ready: VecDeque<String>,
}

impl<T> Queues<T> {
    fn next_ready(&mut self) -> Option<Job<T>> {
        let key = self.ready.pop_front()?;
        let queue = self.waiting.get_mut(&key)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(&key);
        }
        job
    }
}

async fn dispatch<T, F, Fut>(
    mut jobs: mpsc::UnboundedReceiver<Job<T>>,
    concurrency: usize,
    handler: Arc<F>,
) -> PoolStats
where
    T: Send + 'static,
    F: Fn(Change<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut queues = Queues {
        waiting: HashMap::new(),
        busy: HashSet::new(),
        ready: VecDeque::new(),
    };
    let mut running = JoinSet::new();
    let mut stats = PoolStats::default();
    let mut open = true;
    loop {
        while running.len() < concurrency {
            let Some(job) = queues.next_ready() else {
                break;
            };
            start(&mut running, &mut queues.busy, job, &handler);
        }
        if !open && running.is_empty() {
            return stats;
        }
        tokio::select! {
            job = jobs.recv(), if open => {
                let Some(job) = job else {
                    open = false;
                    continue;
                };
                let key = &job.key;
                if queues.busy.contains(key) || queues.waiting.contains_key(key) {
                    queues.waiting.entry(key.clone()).or_default().push_back(job);
                } else if running.len() < concurrency {
                    start(&mut running, &mut queues.busy, job, &handler);
                } else {
                    queues.ready.push_back(key.clone());
                    queues.waiting.entry(key.clone()).or_default().push_back(job);
                }
            }
            Some(done) = running.join_next() => {
                let (key, returned) = match done {
                    Ok(done) => done,
                    Err(error) => resume_unwind(error.into_panic()),
                };
                if returned {
                    stats.handled += 1;
                } else {
                    stats.panicked += 1;
                }
                queues.busy.remove(&key);
                if queues.waiting.contains_key(&key) {
                    queues.ready.push_back(key);
                }
            }
        }
    }
}

fn start<T, F, Fut>(
    running: &mut JoinSet<(String, bool)>,
    busy: &mut HashSet<String>,
    job: Job<T>,
    handler: &Arc<F>,
) where
    T: Send + 'static,
    F: Fn(Change<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    busy.insert(job.key.clone());
    let handler = Arc::clone(handler);
    running.spawn(async move {
        let Job { key, change, _room } = job;
        let handling = async { handler(change).await };
        let returned = AssertUnwindSafe(handling).catch_unwind().await.is_ok();
        drop(_room);
        (key, returned)
    });
}
