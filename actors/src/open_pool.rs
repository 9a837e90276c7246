//! A fixed pool of threads that check and open clients' shares.
//!
//! Each share costs a digest, a signature check and a decryption: too long to run on an
//! async worker, and at thousands of shares a round, handing each to tokio's blocking
//! pool woke a different idle thread per share (a fifth of the servers' time went to
//! the kernel switching tasks). Here a few threads drain one bounded queue: under load
//! they stay busy and switch rarely. A full queue refuses the share (the client sends
//! it again) rather than growing.
//!
//! ```text
//!  client_api::take_share ─job (bounded queue, OPEN_QUEUE)─► share-open-i threads
//!                        ◄────────── oneshot reply ─────────┘
//! ```

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Jobs waiting for a thread, at most; beyond it a share is refused as busy.
pub const OPEN_QUEUE: usize = 4096;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job did not run.
#[derive(Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The queue is full.
    Busy,
    /// The pool's threads are gone.
    Stopped,
}

/// A fixed set of threads running jobs from one bounded queue. Cheap to share; the
/// threads end once every handle is dropped.
pub struct OpenPool {
    tx: SyncSender<Job>,
}

impl OpenPool {
    /// `threads` threads (at least one) named `share-open-i`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(OPEN_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("share-open-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self { tx })
    }

    /// Run `f` on a pool thread and wait for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(f());
        });
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => PoolError::Busy,
            TrySendError::Disconnected(_) => PoolError::Stopped,
        })?;
        answer.await.map_err(|_| PoolError::Stopped)
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // One thread waits in `recv` holding the lock; the others wait for the lock.
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match job {
            // A job that panics loses only its own answer (the caller hears `Stopped`);
            // the thread goes on serving the queue.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return, // every sender is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_loses_its_answer_and_the_thread_serves_on() {
        let pool = OpenPool::new(1).expect("thread");
        let panicked: Result<(), PoolError> = pool.run(|| panic!("a bad share")).await;
        assert_eq!(panicked, Err(PoolError::Stopped));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }

    #[tokio::test]
    async fn jobs_run_on_the_pool_and_a_full_queue_refuses() {
        let pool = OpenPool::new(2).expect("threads");
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("runs");
        assert!(name.is_some_and(|n| n.starts_with("share-open-")));
        // Hold both threads, fill the queue: the next job is refused, not queued.
        let (hold, release) = std::sync::mpsc::channel::<()>();
        let release = Arc::new(Mutex::new(release));
        let mut waiting = Vec::new();
        for _ in 0..2 {
            let release = release.clone();
            let (started, on_start) = oneshot::channel();
            let pool_job = move || {
                let _ = started.send(());
                let _ = release.lock().map(|r| r.recv());
            };
            let _ = pool.tx.try_send(Box::new(pool_job));
            waiting.push(on_start);
        }
        for w in waiting {
            w.await.expect("a thread took it");
        }
        for _ in 0..OPEN_QUEUE {
            pool.tx
                .try_send(Box::new(|| {}))
                .expect("room in the queue");
        }
        assert_eq!(pool.run(|| ()).await, Err(PoolError::Busy));
        drop(hold);
    }
}
