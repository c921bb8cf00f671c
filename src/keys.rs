//! The Redis key layout of one queue (documented in docs/redis-layout.md).
//!
//! Every key is `{prefix}:{<queue>}:<suffix>`: the braces make the queue name a Redis
//! Cluster hash tag, so all keys of a queue share one slot and every script is atomic there.

/// Version of the key layout, stored in the meta hash: a script that finds another version
/// refuses to write (`upgrade_layout.lua` converts a queue of version 1).
pub const LAYOUT_VERSION: &str = "2";

/// A queue's keys apart from the per-job ones, as (the name scripts use in their table `K`,
/// the key's suffix). Both this struct and the scripts' `K` are built from this one list.
/// The structures whose members are job ids carry the layout in their names (`:2`): code of
/// layout 1 still running against an upgraded queue finds them empty instead of taking ids
/// whose jobs it cannot read.
pub const QUEUE_KEYS: [(&str, &str); 41] = [
    ("meta", "meta"),
    ("id", "id"),
    ("prioCounter", "pc"),
    ("wait", "wait:2"),
    ("prioritized", "prioritized:2"),
    ("delayed", "delayed:2"),
    ("active", "active:2"),
    ("completed", "completed:2"),
    ("failed", "failed:2"),
    ("dlq", "dlq:2"),
    ("workers", "workers"),
    // Worker id -> the description its heartbeat writes (src/registry.rs).
    ("workersInfo", "workers:info"),
    ("marker", "marker:2"),
    ("limiter", "limiter"),
    ("schedules", "schedules"),
    ("schedulesNext", "schedules:next"),
    ("schedulesLast", "schedules:last"),
    ("schedulesWake", "schedules:wake"),
    ("events", "events"),
    // Options texts stored once per queue (lib.lua's optsRef).
    ("opts", "opts"),
    ("optsIndex", "opts:index"),
    // Groups (per-group keys are `g:<group>...`, built by the scripts like job keys).
    ("groups", "groups:2"),
    ("groupsSeq", "groups:seq"),
    ("groupsParked", "groups:parked:2"),
    ("groupsLimited", "groups:limited:2"),
    ("groupsKnown", "groups:known"),
    ("groupsWaiting", "groups:waiting:2"),
    // Flows (lib_flows.lua): parents waiting for children, and children's outcomes for a
    // parent in another slot.
    ("wchildren", "wchildren:2"),
    ("flowOutbox", "flow:outbox:2"),
    // Layout 1's structures, read only by the upgrade to layout 2.
    ("wait1", "wait"),
    ("prioritized1", "prioritized"),
    ("delayed1", "delayed"),
    ("active1", "active"),
    ("completed1", "completed"),
    ("failed1", "failed"),
    ("dlq1", "dlq"),
    ("marker1", "marker"),
    ("groups1", "groups"),
    ("groupsParked1", "groups:parked"),
    ("groupsLimited1", "groups:limited"),
    ("groupsWaiting1", "groups:waiting"),
];

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
        let key = |name: &str| {
            let (_, suffix) = QUEUE_KEYS
                .iter()
                .find(|(known, _)| *known == name)
                .expect("a key of QUEUE_KEYS");
            format!("{base}{suffix}")
        };
        Self {
            meta: key("meta"),
            id: key("id"),
            priority_counter: key("prioCounter"),
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
            schedules_next: key("schedulesNext"),
            schedules_last: key("schedulesLast"),
            schedules_wake: key("schedulesWake"),
            events: key("events"),
            base,
        }
    }

    /// The keys of the queue whose key base is `base` (`prefix:{name}:`); None for a
    /// text of another form. Flows name jobs of other queues by their key base.
    pub fn from_base(base: &str) -> Option<Self> {
        let open = base.find('{')?;
        let name = base[open + 1..].strip_suffix("}:")?;
        let prefix = base[..open].strip_suffix(':')?;
        (!name.contains('}')).then(|| Self::new(prefix, name))
    }

    /// The keys of queue `name` under this queue's prefix.
    pub fn sibling(&self, name: &str) -> Self {
        let open = self.base.find('{').expect("a key base has a hash tag");
        Self::new(&self.base[..open.saturating_sub(1)], name)
    }

    /// The one key a script call declares: it routes the call on a Redis Cluster. Scripts
    /// build the others from the key base, in the same hash slot (see `scripts.rs`).
    pub fn declared(&self) -> &str {
        &self.meta
    }

    /// The common start of every key, passed to scripts that build job keys themselves.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The list of children's outcomes for parents in another slot (`lib_flows.lua`).
    pub fn flow_outbox(&self) -> String {
        format!("{}flow:outbox:2", self.base)
    }

    pub fn job(&self, id: &str) -> String {
        format!("{}j:{id}", self.base)
    }

    pub fn job_logs(&self, id: &str) -> String {
        format!("{}j:{id}:logs", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let k = QueueKeys::new("jq", "emails");
        assert_eq!(k.meta, "jq:{emails}:meta");
        assert_eq!(k.wait, "jq:{emails}:wait:2");
        assert_eq!(k.job("42"), "jq:{emails}:j:42");
        assert_eq!(k.job_logs("42"), "jq:{emails}:j:42:logs");
        assert!(k.job("1").starts_with(k.base()));
        let other = QueueKeys::from_base("jq:{images#2}:").unwrap();
        assert_eq!(other.meta, "jq:{images#2}:meta");
        assert_eq!(k.sibling("images").base(), "jq:{images}:");
        assert!(QueueKeys::from_base("jq:images:").is_none());
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
