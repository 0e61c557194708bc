//! One shutdown signal every task honours: a `watch` channel set once (by SIGINT/SIGTERM, by
//! a fatal error, or by a test), that any number of tasks wait on.

use tokio::sync::watch;

/// The sending side: [`Trigger::fire`] stops everything listening.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// The listening side; cheap to clone, one per task.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A new signal, not fired.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    /// Fires the signal (idempotent).
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    /// A new listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether the signal has fired.
    pub fn is_fired(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until the signal fires (at once if it has; also when the trigger is gone).
    pub async fn fired(&self) {
        let mut rx = self.rx.clone();
        // An error means the trigger was dropped: treat it as fired.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_sees_the_signal() {
        let (trigger, a) = channel();
        let b = a.clone();
        let c = trigger.subscribe();
        assert!(!a.is_fired());
        let waiter = tokio::spawn(async move { b.fired().await });
        trigger.fire();
        waiter.await.unwrap();
        a.fired().await;
        assert!(c.is_fired());
        // A dropped trigger counts as fired, so no task waits forever.
        let (t2, d) = channel();
        drop(t2);
        d.fired().await;
    }
}
