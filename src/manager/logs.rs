//! The leader's log broker. Task output stays on the node that ran the task; a `service logs`
//! request opens a subscription here, each node's agent picks up the subscriptions for its tasks
//! (a long poll, like assignments) and publishes the lines back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::rpc::proto::{LogLine, LogSubscription};

/// How long a node's poll for subscriptions waits before answering with none.
const POLL_WAIT: Duration = Duration::from_secs(20);

/// Lines from one node for one subscription.
#[derive(Debug)]
pub struct Published {
    /// The node they came from.
    pub node_id: String,
    /// The lines.
    pub lines: Vec<LogLine>,
    /// The node has sent everything it will (not following, or its tasks ended).
    pub done: bool,
}

/// Open subscriptions and those waiting for their nodes to pick them up.
#[derive(Default)]
pub struct LogBroker {
    next_id: AtomicU64,
    state: Mutex<BrokerState>,
    new_subscription: Notify,
}

#[derive(Default)]
struct BrokerState {
    waiting: HashMap<String, Vec<LogSubscription>>,
    open: HashMap<u64, mpsc::Sender<Published>>,
}

impl LogBroker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BrokerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a subscription to the tasks in `tasks_by_node`; the lines arrive on the receiver
    /// until [`LogBroker::close`].
    pub fn subscribe(
        &self,
        tasks_by_node: BTreeMap<String, Vec<String>>,
        template: LogSubscription,
    ) -> (u64, mpsc::Receiver<Published>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (sender, receiver) = mpsc::channel(64);
        let mut state = self.lock();
        state.open.insert(id, sender);
        for (node_id, task_ids) in tasks_by_node {
            let subscription = LogSubscription {
                id,
                task_ids,
                ..template.clone()
            };
            state.waiting.entry(node_id).or_default().push(subscription);
        }
        drop(state);
        self.new_subscription.notify_waiters();
        (id, receiver)
    }

    /// Ends a subscription: its nodes stop sending.
    pub fn close(&self, id: u64) {
        let mut state = self.lock();
        state.open.remove(&id);
        for waiting in state.waiting.values_mut() {
            waiting.retain(|s| s.id != id);
        }
    }

    /// The subscriptions waiting for `node_id`, once there are some (or none after a while).
    pub async fn take(&self, node_id: &str) -> Vec<LogSubscription> {
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        loop {
            let notified = self.new_subscription.notified();
            let taken = self.lock().waiting.remove(node_id).unwrap_or_default();
            if !taken.is_empty() || tokio::time::Instant::now() >= deadline {
                return taken;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Hands lines to the subscriber; false once nobody listens any more.
    pub async fn publish(&self, id: u64, published: Published) -> bool {
        let sender = self.lock().open.get(&id).cloned();
        match sender {
            Some(sender) => sender.send(published).await.is_ok(),
            None => false,
        }
    }
}
