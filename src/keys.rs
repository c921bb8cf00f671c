//! The Redis key layout of one queue (documented in docs/redis-layout.md).
//!
//! Every key is `{prefix}:{<queue>}:<suffix>`: the braces make the queue name a Redis
//! Cluster hash tag, so all keys of a queue share one slot and every script is atomic there.

/// Version of the key layout, stored in the meta hash so a later release can migrate.
pub const LAYOUT_VERSION: &str = "1";

#[derive(Clone, Debug)]
pub struct QueueKeys {
    base: String,
    pub meta: String,
    pub id: String,
    pub priority_counter: String,
    pub wait: String,
    pub prioritized: String,
    pub delayed: String,
    pub active: String,
    pub completed: String,
    pub failed: String,
    pub dlq: String,
    pub workers: String,
    pub marker: String,
    pub limiter: String,
    pub schedules: String,
    pub schedules_next: String,
    pub schedules_last: String,
    pub schedules_wake: String,
    pub events: String,
}

impl QueueKeys {
    pub fn new(prefix: &str, queue: &str) -> Self {
        let base = format!("{prefix}:{{{queue}}}:");
        let key = |suffix: &str| format!("{base}{suffix}");
        Self {
            meta: key("meta"),
            id: key("id"),
            priority_counter: key("pc"),
            wait: key("wait"),
            prioritized: key("prioritized"),
            delayed: key("delayed"),
            active: key("active"),
            completed: key("completed"),
            failed: key("failed"),
            dlq: key("dlq"),
            workers: key("workers"),
            marker: key("marker"),
            limiter: key("limiter"),
            schedules: key("schedules"),
            schedules_next: key("schedules:next"),
            schedules_last: key("schedules:last"),
            schedules_wake: key("schedules:wake"),
            events: key("events"),
            base,
        }
    }

    /// The keys every script gets, in the order `lua/lib.lua` names them.
    pub fn all(&self) -> [&str; 18] {
        [
            &self.meta,
            &self.id,
            &self.wait,
            &self.prioritized,
            &self.delayed,
            &self.active,
            &self.completed,
            &self.failed,
            &self.dlq,
            &self.marker,
            &self.priority_counter,
            &self.limiter,
            &self.workers,
            &self.schedules,
            &self.schedules_next,
            &self.schedules_last,
            &self.schedules_wake,
            &self.events,
        ]
    }

    /// The common start of every key, passed to scripts that build job keys themselves.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.base)
    }

    pub fn job_logs(&self, id: &str) -> String {
        format!("{}job:{id}:logs", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let k = QueueKeys::new("jq", "emails");
        assert_eq!(k.meta, "jq:{emails}:meta");
        assert_eq!(k.wait, "jq:{emails}:wait");
        assert_eq!(k.job("42"), "jq:{emails}:job:42");
        assert_eq!(k.job_logs("42"), "jq:{emails}:job:42:logs");
        assert!(k.job("1").starts_with(k.base()));
    }

    #[test]
    fn all_keys_hash_to_the_same_cluster_slot() {
        let k = QueueKeys::new("app", "q");
        for key in [&k.meta, &k.wait, &k.delayed, &k.dlq, &k.job("x")] {
            let tag_start = key.find('{').unwrap() + 1;
            let tag_end = key.find('}').unwrap();
            assert_eq!(&key[tag_start..tag_end], "q");
        }
    }
}
