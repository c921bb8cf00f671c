//! Limits across the fleet: the queue's global concurrency and the groups' limits and
//! pauses (`NativeGroups`, the admin side), and the part of the worker's ack call that
//! carries groups. The limits themselves are enforced by the scripts: `fetch.lua` takes
//! jobs within them, and every script that takes a job out of active frees its group's
//! slot (`leaveGroup` in `lib.lua`).

use std::sync::Arc;

use pyo3::prelude::*;
use redis::Script;

use crate::queue::{NativeQueue, QueueCore};
use crate::runtime::into_awaitable;
use crate::scripts::{self, ScriptArgs};

#[pyclass(frozen, module = "jobqueue._native")]
pub struct NativeGroups {
    core: Arc<QueueCore>,
}

/// A group's state: (waiting, active, concurrency, (rate max, window ms), paused, limits of
/// its own, rate-limited until ms or None).
type GroupStats = (
    i64,
    i64,
    Option<i64>,
    Option<(i64, i64)>,
    bool,
    bool,
    Option<i64>,
);

impl NativeGroups {
    /// Run an admin script with `args` after the key base; resolves to None.
    fn run<'py>(
        &self,
        py: Python<'py>,
        script: &'static Script,
        args: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let mut invocation = scripts::invocation(script, &core.keys);
            for arg in args {
                invocation.arg(arg);
            }
            let _: i64 = core.conn.invoke(&invocation).await?;
            Ok(())
        })
    }
}

fn text(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[pymethods]
impl NativeGroups {
    #[new]
    fn new(queue: &NativeQueue) -> Self {
        Self {
            core: queue.core.clone(),
        }
    }

    /// Set (or with None remove) how many jobs of the queue may be active at once.
    fn set_concurrency<'py>(
        &self,
        py: Python<'py>,
        limit: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, &scripts::SET_CONCURRENCY, vec![text(limit)])
    }

    /// Replace the limits of `group` ("" = the default of every group): a concurrency
    /// and a rate `(max, window ms)`, each None for none. `event` is the limit as JSON, for
    /// the fleet event.
    fn set_limit<'py>(
        &self,
        py: Python<'py>,
        group: String,
        concurrency: Option<u64>,
        rate: Option<(u64, u64)>,
        event: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = vec![
            group,
            text(concurrency),
            text(rate.map(|r| r.0)),
            text(rate.map(|r| r.1)),
            event,
        ];
        self.run(py, &scripts::SET_GROUP_LIMIT, args)
    }

    fn set_paused<'py>(
        &self,
        py: Python<'py>,
        group: String,
        paused: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let flag = if paused { "1" } else { "0" };
        self.run(py, &scripts::SET_GROUP_PAUSED, vec![group, flag.into()])
    }

    /// Resolves to the group's state (see `GroupStats`).
    fn stats<'py>(&self, py: Python<'py>, group: String) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let mut invocation = scripts::invocation(&scripts::GET_GROUP_STATS, &core.keys);
            invocation.arg(group);
            let (waiting, active, limit, rate_max, window, paused, own, reopens): (
                i64,
                i64,
                i64,
                i64,
                i64,
                i64,
                i64,
                i64,
            ) = core.conn.invoke(&invocation).await?;
            let stats: GroupStats = (
                waiting,
                active,
                (limit >= 0).then_some(limit),
                (rate_max > 0).then_some((rate_max, window)),
                paused == 1,
                own == 1,
                (reopens > 0).then_some(reopens),
            );
            Ok(stats)
        })
    }
}

/// The tail of an ack call (`ack.lua`), sent only when needed so that an ungrouped job
/// costs nothing more: whether to wake a waiting worker (the queue has a global
/// concurrency, and these acks free room in it), then (entry index from 1, group) of each
/// grouped entry.
pub(crate) fn push_ack_tail<'a>(
    call: &mut impl ScriptArgs,
    wake: bool,
    groups: impl Iterator<Item = (usize, &'a str)>,
) {
    let groups: Vec<(usize, &str)> = groups.collect();
    if !wake && groups.is_empty() {
        return;
    }
    call.push(if wake { 1 } else { 0 }).push(groups.len());
    for (index, group) in groups {
        call.push(index).push(group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{QueueKeys, LAYOUT_VERSION};
    use crate::test_redis::TestRedis;
    use redis::Value;

    /// Add one job per group name (in order), through add_jobs with its groups tail.
    fn add(con: &mut redis::Connection, keys: &QueueKeys, groups: &[&str]) {
        let mut inv = scripts::invocation(&scripts::ADD_JOBS, keys);
        inv.arg(LAYOUT_VERSION).arg(60_000).arg(groups.len());
        for _ in groups {
            inv.arg("")
                .arg("x")
                .arg("{}")
                .arg("{}")
                .arg(0)
                .arg(0)
                .arg(1)
                .arg("");
        }
        inv.arg(groups.len());
        for (i, group) in groups.iter().enumerate() {
            inv.arg(i + 1).arg(*group);
        }
        let _: Value = inv.invoke(con).unwrap();
    }

    /// One fetch of up to `want` jobs: [(id, token, group or "")] in reply order.
    fn fetch(
        con: &mut redis::Connection,
        keys: &QueueKeys,
        want: usize,
    ) -> Vec<(String, String, String)> {
        let mut inv = scripts::invocation(&scripts::FETCH, keys);
        inv.arg(want).arg(30_000).arg("w").arg(0).arg(0);
        let reply: Vec<Value> = inv.invoke(con).unwrap();
        let text = |v: &Value| String::from_redis_value(v.clone()).unwrap();
        let token = text(&reply[6]);
        let mut jobs = Vec::new();
        for job in reply[7..].chunks(4) {
            let raw: Vec<u8> = Vec::from_redis_value(job[1].clone()).unwrap();
            let group = Record::parse(&raw).unwrap().group.unwrap_or_default();
            jobs.push((text(&job[0]), token.clone(), group));
        }
        jobs
    }

    use crate::ack_args::{push_entries, AckEntry};
    use crate::record::Record;
    use redis::FromRedisValue;

    #[test]
    fn fetch_takes_an_even_share_from_each_group_in_turn() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let keys = QueueKeys::new("jq", "turns");
        let mut groups = vec!["a"; 10];
        groups.extend(["b", "c"]);
        add(&mut con, &keys, &groups);
        let taken: Vec<String> = fetch(&mut con, &keys, 6)
            .into_iter()
            .map(|(_, _, group)| group)
            .collect();
        // a's share of 6 over 3 groups is 2, then b and c, then a again for the rest.
        assert_eq!(taken, ["a", "a", "b", "c", "a", "a"]);
        let ring: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{}groups:2", keys.base()))
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert_eq!(ring, ["a"]);
    }

    #[test]
    fn a_group_at_its_concurrency_waits_until_an_ack_frees_its_slot() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let keys = QueueKeys::new("jq", "parked");
        let mut inv = scripts::invocation(&scripts::SET_GROUP_LIMIT, &keys);
        inv.arg("a").arg("1").arg("").arg("").arg("{}");
        let _: i64 = inv.invoke(&mut con).unwrap();
        add(&mut con, &keys, &["a", "a", "a"]);
        let first = fetch(&mut con, &keys, 5);
        assert_eq!(first.len(), 1);
        assert!(
            fetch(&mut con, &keys, 5).is_empty(),
            "parked at its concurrency"
        );
        let (id, token, group) = &first[0];
        let mut ack = scripts::invocation(&scripts::ACK, &keys);
        let entry = AckEntry {
            id,
            token,
            outcome: "completed",
            value: b"null",
            keep: (-1, -1),
            name: "x",
            attempts: 1,
            stacktrace: "",
            delay: 0,
        };
        push_entries(&mut ack, &[entry]);
        push_ack_tail(&mut ack, false, [(1, group.as_str())].into_iter());
        let _: Value = ack.invoke(&mut con).unwrap();
        assert_eq!(fetch(&mut con, &keys, 5).len(), 1);
        let active: Option<i64> = redis::cmd("HGET")
            .arg(format!("{}g:a", keys.base()))
            .arg("active")
            .query(&mut con)
            .unwrap();
        assert_eq!(active, Some(1));
    }
}
