//! Flows (docs/flows.md): jobs that wait for other jobs. `NativeFlows` is the producer and
//! admin side: it adds a flow's jobs with one `add_flow.lua` call per queue slot, lists
//! children added in another slot in their parent's `deps`, and reads a parent's children.
//! The worker side hands the outcomes of children whose parent lives in another slot over
//! to that slot ([`hand_over_outbox`]) and replays its queue's outbox, where a killed
//! worker left them ([`replay_outbox`]). Everything that decides (counting, moving the
//! parent, failing it) is in the scripts (`lua/lib_flows.lua`).
//!
//! Flows reach other queues (and partitions) over this queue's connection: every call
//! declares a key of its own queue's slot, so a cluster routes it there. Where the event
//! loop's connection is open (`loop_conn.rs`: one server, or Sentinel's primary), Python
//! sends the add_flow calls there instead; `add` serves the rest.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use pyo3::prelude::*;

use crate::connection::RedisConn;
use crate::errors::JqError;
use crate::keys::QueueKeys;
use crate::queue::{
    added_jobs, read_job, remove_job_in, AddJobsReply, NativeQueue, NewJob, QueueCore,
};
use crate::record::split_parent;
use crate::runtime::into_awaitable;
use crate::scripts::{self, ScriptArgs};

/// A family of an add_flow call, a parent's children that follow each other in it: (the
/// parent's index in the call, from 1, or None; the parent ref `<key base> <id>` when the
/// parent is not in the call; the first child's index; the children count; their failure
/// policies, a letter each: `f`, `i` or `w`).
pub(crate) type FlowFamily = (Option<usize>, Option<String>, usize, usize, String);

/// Outbox entries handed over per script call.
const OUTBOX_BATCH: usize = 500;

#[pyclass(frozen, module = "jobqueue._native")]
pub struct NativeFlows {
    core: Arc<QueueCore>,
}

#[pymethods]
impl NativeFlows {
    #[new]
    fn new(queue: &NativeQueue) -> Self {
        Self {
            core: queue.core.clone(),
        }
    }

    /// Add the jobs of a flow that live in queue `queue` (this queue, one of its
    /// partitions, or another queue of the same prefix) in one script call: `jobs` as
    /// `NativeQueue.add_jobs` takes them, parents before their children; `families` and
    /// `parents` ((index from 1, children count)) say how they hang together. Bad input
    /// raises here, before any I/O. Resolves as `add_jobs`.
    fn add<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        jobs: Vec<NewJob<'py>>,
        families: Vec<FlowFamily>,
        parents: Vec<(usize, usize)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys = self.core.keys.sibling(&queue);
        let mut inv = scripts::invocation(&scripts::ADD_FLOW, &keys);
        let count = jobs.len();
        let delayed = add_flow_args(&self.core, &mut inv, jobs, &families, &parents)?;
        let core = self.core.clone();
        into_awaitable(py, async move {
            let (reply, short): (AddJobsReply, _) = core.write(&inv).await?;
            if let Some(confirmed) = short {
                let what = format!("{count} job(s) of a flow");
                return Err(core.not_replicated(confirmed, &what).into());
            }
            Ok(added_jobs(reply, &delayed))
        })
    }

    /// List `children` (refs `<key base> <id>`, added in another slot) in the `deps` of
    /// parent `parent_id` of queue `queue`. Resolves to how many were listed now.
    fn link<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        parent_id: String,
        children: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = core.keys.sibling(&queue);
            let mut inv = scripts::invocation(&scripts::FLOW_LINK, &keys);
            let count = children.len();
            inv.arg(&parent_id).arg(children);
            let (listed, short): (i64, _) = core.write(&inv).await?;
            if let Some(confirmed) = short {
                let what = format!("the links of {count} job(s) of a flow to their parent");
                return Err(core.not_replicated(confirmed, &what).into());
            }
            Ok(listed)
        })
    }

    /// The jobs of queue `queue` that adding jobs of these `(job id, idempotency key)`
    /// pairs ('' = none) would find instead of creating them: per pair the id found, or ''.
    fn find<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        pairs: Vec<(String, String)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = core.keys.sibling(&queue);
            let mut inv = scripts::invocation(&scripts::FIND_JOBS, &keys);
            for (id, key) in &pairs {
                inv.arg(id).arg(key);
            }
            let found: Vec<String> = core.conn.invoke(&inv).await?;
            Ok(found)
        })
    }

    /// The children of parent `job_id` of queue `queue`: `[(child ref, state)]`, state ''
    /// (pending), `c<result JSON>` or `f<reason>`.
    fn children<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        job_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = core.keys.sibling(&queue);
            Ok(children_of(&core.conn, &keys, &job_id).await?)
        })
    }

    /// `NativeQueue.remove_job` of a job of queue `queue`.
    fn remove_job<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        job_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = core.keys.sibling(&queue);
            Ok(remove_job_in(&core.conn, &keys, &job_id).await?)
        })
    }

    /// A job of queue `queue` as `NativeQueue.get_job` reads it.
    fn get_job<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        job_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = core.keys.sibling(&queue);
            Ok(read_job(&core.conn, &keys, &job_id).await?)
        })
    }
}

/// The arguments of an add_flow.lua call after its key and base (`NativeFlows.add` and
/// the event loop's connection, `loop_conn.rs`): the jobs as add_jobs takes them, then
/// `families` and `parents`. Bad input raises here, before any I/O. Returns which jobs are
/// delayed.
pub(crate) fn add_flow_args(
    core: &QueueCore,
    call: &mut impl ScriptArgs,
    jobs: Vec<NewJob<'_>>,
    families: &[FlowFamily],
    parents: &[(usize, usize)],
) -> PyResult<Vec<bool>> {
    let prepared = jobs
        .into_iter()
        .enumerate()
        .map(|(index, job)| core.prepare_job(job, Some(index)))
        .collect::<PyResult<Vec<_>>>()?;
    let delayed = core.push_jobs_args(call, prepared.iter(), true);
    call.push(families.len());
    for (parent_index, parent_ref, first, count, policies) in families {
        call.push(parent_index.map(|i| i.to_string()).unwrap_or_default())
            .push(parent_ref.as_deref().unwrap_or(""))
            .push(first)
            .push(count)
            .push(policies);
    }
    call.push(parents.len());
    for (index, count) in parents {
        call.push(index).push(count);
    }
    Ok(delayed)
}

/// The `deps` of parent `job_id` (get_deps.lua): `[(child ref, state)]`.
pub(crate) async fn children_of(
    conn: &RedisConn,
    keys: &QueueKeys,
    job_id: &str,
) -> Result<Vec<(String, String)>, JqError> {
    let mut inv = scripts::invocation(&scripts::GET_DEPS, keys);
    inv.arg(job_id);
    let flat: Vec<(String, String)> = conn.invoke(&inv).await?;
    Ok(flat)
}

/// The key base of the parent an outbox entry names (`<child ref> 0x1f <policy><parent
/// ref> 0x1f ...`), or None for a damaged entry.
fn parent_base(entry: &str) -> Option<&str> {
    let parent = entry.split('\x1f').nth(1)?;
    split_parent(parent).map(|(_, base, _)| base)
}

/// Fault injection for `tests/reliability/test_flow_kills.py`: with
/// `JOBQUEUE_TEST_KILL_AT=<step>` in its environment a process SIGKILLs itself on reaching
/// that step of a handover: `handover` (the children's outcomes are in their outbox, their
/// parents not told yet) or `outbox` (told, the entries not yet removed). Read once.
static KILL_AT: LazyLock<Option<String>> =
    LazyLock::new(|| std::env::var("JOBQUEUE_TEST_KILL_AT").ok());

fn kill_point(step: &str) {
    if KILL_AT.as_deref() == Some(step) {
        // SAFETY: kill(2) of this process; no memory is touched.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Hand the outbox entries `entries` of the queue `from` over to their parents' slots
/// (flow_child_done.lua, one call per parent slot), then remove them from the outbox.
/// Entries those calls push in turn (a failure travelling up to a parent in yet another
/// slot) follow the same way. Every step is idempotent: a worker killed anywhere leaves the
/// entries in an outbox, and [`replay_outbox`] hands them over again. With durability on,
/// entries leave the outbox only once the replicas confirmed their parents' update: a
/// failover that loses the update finds them there still.
pub(crate) async fn hand_over_outbox(
    core: &QueueCore,
    from: QueueKeys,
    entries: Vec<String>,
) -> Result<(), JqError> {
    let conn = &core.conn;
    let mut work = vec![(from, entries)];
    while let Some((keys, entries)) = work.pop() {
        let mut by_base: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
        for entry in &entries {
            // A damaged entry (written by hand) is only removed.
            if let Some(base) = parent_base(entry) {
                by_base.entry(base).or_default().push(entry);
            }
        }
        for (base, batch) in by_base {
            let Some(parent_keys) = QueueKeys::from_base(base) else {
                continue;
            };
            for part in batch.chunks(OUTBOX_BATCH) {
                kill_point("handover");
                let mut inv = scripts::invocation(&scripts::FLOW_CHILD_DONE, &parent_keys);
                inv.arg(part);
                let (pushed, short): (Vec<String>, _) = core.write(&inv).await?;
                if let Some(confirmed) = short {
                    let what = format!("the outcomes of {} flow child(ren)", part.len());
                    return Err(core.not_replicated(confirmed, &what));
                }
                if !pushed.is_empty() {
                    work.push((parent_keys.clone(), pushed));
                }
            }
        }
        for part in entries.chunks(OUTBOX_BATCH) {
            kill_point("outbox");
            let mut inv = scripts::invocation(&scripts::FLOW_OUTBOX_DONE, &keys);
            inv.arg(part);
            let _: i64 = conn.invoke(&inv).await?;
        }
    }
    Ok(())
}

/// Hand over what the outbox of queue `keys` holds (up to a batch): entries a worker
/// killed between its ack and the handover left behind, or a stalled child's failure.
/// Returns whether there were any.
pub(crate) async fn replay_outbox(core: &QueueCore, keys: &QueueKeys) -> Result<bool, JqError> {
    let conn = &core.conn;
    let mut cmd = redis::cmd("LRANGE");
    cmd.arg(keys.flow_outbox())
        .arg(0)
        .arg(OUTBOX_BATCH as i64 - 1);
    let entries: Vec<String> = conn.query(&cmd).await?;
    if entries.is_empty() {
        return Ok(false);
    }
    hand_over_outbox(core, keys.clone(), entries).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_its_parents_key_base() {
        let entry = "jq:{a}: 3\x1ffjq:{b#2}: 2.7\x1fc\x1f{\"x\":\"\x1f\"}";
        assert_eq!(parent_base(entry), Some("jq:{b#2}:"));
        assert_eq!(parent_base("damaged"), None);
    }
}
