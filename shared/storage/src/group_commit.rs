//! Group commit: many callers each need a small write durable before they answer (an audit
//! event, a check record), and each transaction costs far more than its rows. One writer task
//! takes everything queued while its previous transaction ran and commits it in the next; each
//! caller is told only once the transaction holding its item committed, with what the commit
//! decided for that item. No timer: a lone item commits at once, and under load batches grow by
//! themselves.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// Why an item was not committed.
#[derive(Debug)]
pub enum GroupCommitError<E> {
    /// The transaction holding the item failed (shared by every item of that transaction).
    Failed(Arc<E>),
    /// The writer task is gone (its owner is shutting down).
    Stopped,
}

struct Pending<T, O, E> {
    item: T,
    committed: oneshot::Sender<Result<O, Arc<E>>>,
}

/// The queue in front of one writer task; cloning shares the writer. `O` is what the commit
/// tells each item's caller (`()` when there is nothing to tell).
pub struct GroupCommit<T, E, O = ()> {
    queue: mpsc::Sender<Pending<T, O, E>>,
}

impl<T, E, O> Clone for GroupCommit<T, E, O> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<T: Send + 'static, E: Send + Sync + 'static, O: Send + 'static> GroupCommit<T, E, O> {
    /// Spawns the writer: `commit` gets at most `max_items` items per call and answers with one
    /// output per item, in order; callers wait for room once `queue` items are waiting
    /// (back-pressure, not loss). The writer ends when the last handle is dropped, so `commit`
    /// should hold the store, not the service owning this.
    pub fn spawn<F, Fut>(max_items: usize, queue: usize, mut commit: F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, E>> + Send,
    {
        let (sender, mut queued) = mpsc::channel::<Pending<T, O, E>>(queue);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_items);
            while queued.recv_many(&mut batch, max_items).await > 0 {
                let (items, waiting): (Vec<_>, Vec<_>) =
                    batch.drain(..).map(|pending| (pending.item, pending.committed)).unzip();
                // A caller that went away (cancelled call) had its item committed anyway, hence
                // the ignored sends. An item the commit gave no output reads as Stopped.
                match commit(items).await {
                    Ok(outputs) => {
                        for (committed, output) in waiting.into_iter().zip(outputs) {
                            let _ = committed.send(Ok(output));
                        }
                    }
                    Err(error) => {
                        let error = Arc::new(error);
                        for committed in waiting {
                            let _ = committed.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { queue: sender }
    }

    /// Queues `item` and returns, once the transaction holding it committed, what the commit
    /// decided for it.
    pub async fn commit(&self, item: T) -> Result<O, GroupCommitError<E>> {
        let (committed, outcome) = oneshot::channel();
        self.queue.send(Pending { item, committed }).await.map_err(|_| GroupCommitError::Stopped)?;
        match outcome.await {
            Ok(result) => result.map_err(GroupCommitError::Failed),
            Err(_) => Err(GroupCommitError::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Semaphore;

    use super::*;

    #[tokio::test]
    async fn items_queued_during_a_commit_share_the_next_and_failures_reach_every_caller() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        // Each commit waits for a permit, so the test decides when a transaction ends.
        let gate = Arc::new(Semaphore::new(0));
        let (seen, commit_gate) = (batches.clone(), gate.clone());
        let writer = GroupCommit::spawn(100, 1_000, move |items: Vec<u32>| {
            let (seen, gate) = (seen.clone(), commit_gate.clone());
            async move {
                let fail = items.contains(&13);
                let items_len = items.len();
                seen.lock().map_err(|_| "poisoned")?.push(items);
                gate.acquire().await.map_err(|_| "closed")?.forget();
                if fail { Err("disk full") } else { Ok(vec![(); items_len]) }
            }
        });
        let call = |item| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.commit(item).await })
        };
        let first = call(0);
        while batches.lock().expect("lock").is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (1..20).map(call).collect();
        while writer.queue.max_capacity() - writer.queue.capacity() < 19 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(2);
        assert!(first.await.expect("join").is_ok());
        for caller in rest {
            match caller.await.expect("join") {
                Err(GroupCommitError::Failed(error)) => assert_eq!(*error, "disk full"),
                other => panic!("every item of the failed transaction fails: {other:?}"),
            }
        }
        let batches = batches.lock().expect("lock").clone();
        assert_eq!(
            batches,
            vec![vec![0], (1..20).collect()],
            "everything queued meanwhile shares one commit"
        );
    }

    #[tokio::test]
    async fn each_caller_gets_the_output_the_commit_gave_its_own_item() {
        let writer = GroupCommit::spawn(100, 1_000, |items: Vec<u32>| async move {
            Ok::<_, &str>(items.into_iter().map(|item| item * 10).collect::<Vec<_>>())
        });
        let callers: Vec<_> = (0..50)
            .map(|item| {
                let writer = writer.clone();
                tokio::spawn(async move { (item, writer.commit(item).await) })
            })
            .collect();
        for caller in callers {
            let (item, output) = caller.await.expect("join");
            assert_eq!(output.expect("committed"), item * 10);
        }
    }
}
