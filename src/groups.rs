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
