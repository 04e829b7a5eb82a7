//! The long-lived tasks of a running part (the bridge's workers, the checks'
//! supervisor, the heartbeat evaluator): built with the part, handed once to
//! the composition root to spawn, and stopped and awaited together. The
//! checks and heartbeats use it too, as they use [`super::clock`].

use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// A part's tasks and the shutdown signal they watch.
pub struct Tasks {
    shutdown: watch::Sender<bool>,
    /// Until the composition root takes them to spawn.
    pending: Mutex<Vec<BoxFuture<'static, ()>>>,
    /// Tracks the taken tasks so that [`Tasks::wait`] can wait for them.
    running: TaskTracker,
}

impl Tasks {
    /// `tasks`, which end once `shutdown` sends `true`.
    pub fn new(shutdown: watch::Sender<bool>, tasks: Vec<BoxFuture<'static, ()>>) -> Tasks {
        Tasks { shutdown, pending: Mutex::new(tasks), running: TaskTracker::new() }
    }

    /// The tasks, for the caller to spawn; empty after the first call.
    pub fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        let tasks = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        tasks.into_iter().map(|task| self.running.track_future(task).boxed()).collect()
    }

    /// Tells every task to stop; true when some were taken and not told before.
    pub fn stop(&self) -> bool {
        self.shutdown.send_replace(true);
        let stopping = !self.running.is_closed() && !self.running.is_empty();
        self.running.close();
        stopping
    }

    /// Waits until every taken task has ended (after [`Tasks::stop`]).
    pub async fn wait(&self) {
        self.running.wait().await;
    }
}
