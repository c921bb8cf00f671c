//! `NativeQueue`: the Rust side of one `JobQueue` — its connection and its producer and
//! admin scripts. Every method that talks to Redis returns an asyncio awaitable and waits
//! without the GIL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use redis::{FromRedisValue, Value};

use crate::blocking_add::BlockingAdds;
use crate::cluster::ClusterNodes;
use crate::connection::{ConnectionOptions, RedisConn, TlsMaterial};
use crate::errors::JqError;
use crate::json::to_json_named;
use crate::keys::{QueueKeys, LAYOUT_VERSION};
use crate::redis_settings::SettingsCheck;
use crate::runtime::into_awaitable;
use crate::scripts::{self, ScriptArgs};
use crate::sentinel::Sentinels;

/// `(sentinel (host, port) list, service name, sentinel username, sentinel password)`.
type SentinelArg = (Vec<(String, u16)>, String, Option<String>, Option<String>);

/// `QueueSettings(durability=...)`: replicas to confirm each add and ack, within ms.
#[derive(Clone, Copy)]
pub(crate) struct Durability {
    pub replicas: u32,
    pub timeout_ms: u64,
}

/// Jobs removed per script call by `drain` and `clear`: small enough that Redis never
/// blocks for long, large enough that a big queue needs few round trips.
const CLEANUP_BATCH: usize = 1000;

/// One job as Python hands it over: (job_id or None, name, data, opts JSON, priority,
/// delay ms, max attempts, idempotency key or None, group or None, trace context or None).
pub(crate) type NewJob<'py> = (
    Option<String>,
    String,
    Bound<'py, PyAny>,
    String,
    u32,
    u64,
    u32,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) struct QueueCore {
    pub(crate) keys: QueueKeys,
    pub(crate) conn: RedisConn,
    /// For blocking waits (the scheduler's), which would stall requests sharing `conn`.
    blocking: RedisConn,
    /// For the fleet-events reader, which blocks on the events stream.
    events: RedisConn,
    max_payload_bytes: usize,
    idempotency_ttl_ms: u64,
    pub(crate) durability: Option<Durability>,
}

#[pyclass(frozen, module = "jobqueue._native")]
pub struct NativeQueue {
    pub(crate) core: Arc<QueueCore>,
    /// Batches `add_job_blocking` calls of many threads (`blocking_add.rs`).
    blocking_adds: BlockingAdds,
}

/// A stream entry: its id and its fields and values, flat.
type StreamEntry = (String, Vec<Vec<u8>>);

/// The events JSON of an entry (its field `e`); "[]" for an entry without one.
fn event_payload(fields: Vec<Vec<u8>>) -> String {
    let mut pairs = fields.chunks_exact(2);
    pairs
        .find(|pair| pair[0] == b"e")
        .map(|pair| String::from_utf8_lossy(&pair[1]).into_owned())
        .unwrap_or_else(|| "[]".into())
}

fn parse<T: FromRedisValue>(value: Value) -> Result<T, JqError> {
    T::from_redis_value(value).map_err(|e| JqError::Redis(format!("unexpected reply: {e}")))
}

/// The reply of add_jobs: (time added, status of the jobs that are not delayed, ids,
/// created flags (1/0)).
pub(crate) type AddJobsReply = (i64, String, Vec<String>, Vec<i64>);
/// What `add_jobs` resolves to, per job: (id, created, created_at, status).
pub(crate) type AddedJob = (String, bool, i64, String);

/// The result of `add_jobs` from its script's reply; `delayed` tells which jobs were.
pub(crate) fn added_jobs(reply: AddJobsReply, delayed: &[bool]) -> Vec<AddedJob> {
    let (created_at, waiting_status, ids, created) = reply;
    ids.into_iter()
        .zip(created)
        .zip(delayed)
        .map(|((id, created), delayed)| {
            let status = if *delayed {
                "delayed"
            } else {
                waiting_status.as_str()
            };
            (id, created == 1, created_at, status.to_string())
        })
        .collect()
}

/// A job's `(fields, logs, paused)` as get_job.lua reads them, or None when it does not
/// exist; `keys` may be another queue's (a flow's job: `flows.rs`).
pub(crate) type JobRead = (HashMap<String, String>, Vec<String>, bool);

pub(crate) async fn read_job(
    conn: &RedisConn,
    keys: &QueueKeys,
    job_id: &str,
) -> Result<Option<JobRead>, JqError> {
    let mut invocation = scripts::invocation(&scripts::GET_JOB, keys);
    invocation.arg(job_id);
    let reply: Vec<Value> = conn.invoke(&invocation).await?;
    if reply.is_empty() {
        return Ok(None);
    }
    let (fields, logs, paused): (HashMap<String, String>, Vec<String>, i64) =
        parse(Value::Array(reply))?;
    Ok(Some((fields, logs, paused == 1)))
}

/// Remove a job that is not active (remove_job.lua); resolves to the refs of pending
/// children of removed flow parents in other slots, for the caller to remove there.
pub(crate) async fn remove_job_in(
    conn: &RedisConn,
    keys: &QueueKeys,
    job_id: &str,
) -> Result<Vec<String>, JqError> {
    let mut invocation = scripts::invocation(&scripts::REMOVE_JOB, keys);
    invocation.arg(job_id);
    conn.invoke(&invocation).await
}

/// One job of an add_jobs call with its data serialized and checked: what the script takes.
pub(crate) struct PreparedJob {
    job_id: Option<String>,
    name: String,
    data: Vec<u8>,
    opts: String,
    priority: u32,
    delay: u64,
    attempts: u32,
    idem: Option<String>,
    group: Option<String>,
    /// The producer's trace context (the record's trace field), checked by Python.
    trace: Option<String>,
}

impl PreparedJob {
    pub(crate) fn delayed(&self) -> bool {
        self.delay > 0
    }

    /// Bytes it adds to a request, to bound a coalesced batch (`loop_conn.rs`).
    pub(crate) fn size(&self) -> usize {
        self.data.len() + self.opts.len() + self.name.len()
    }
}

impl QueueCore {
    /// Serialize and size-check one job's data, so bad input fails before any I/O.
    /// `index` is its place in a batch (None for a single add), for error messages.
    pub(crate) fn prepare_job(
        &self,
        job: NewJob<'_>,
        index: Option<usize>,
    ) -> PyResult<PreparedJob> {
        let (job_id, name, data, opts, priority, delay, attempts, idem, group, trace) = job;
        let root = || match index {
            Some(index) => format!("jobs[{index}] data of job {name:?}"),
            None => format!("data of job {name:?}"),
        };
        let data = to_json_named(&data, root)?;
        if data.len() > self.max_payload_bytes {
            return Err(JqError::PayloadTooLarge(format!(
                "{} is {} bytes, over max_payload_bytes={}",
                root(),
                data.len(),
                self.max_payload_bytes
            ))
            .into());
        }
        Ok(PreparedJob {
            job_id,
            name,
            data,
            opts,
            priority,
            delay,
            attempts,
            idem,
            group,
            trace,
        })
    }

    /// Run a script that writes jobs (an add or an ack). With durability, `WAIT` follows it
    /// in the same round trip; the second value is then the number of replicas that
    /// confirmed, when fewer than asked (the script's writes stay on the primary).
    pub(crate) async fn write<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<(T, Option<i64>), JqError> {
        let Some(d) = self.durability else {
            return Ok((self.conn.invoke(invocation).await?, None));
        };
        let (reply, confirmed) = self
            .conn
            .invoke_then_wait(invocation, d.replicas, d.timeout_ms)
            .await?;
        Ok((
            reply,
            (confirmed < i64::from(d.replicas)).then_some(confirmed),
        ))
    }

    /// The error of a write that fewer replicas than asked confirmed in time.
    pub(crate) fn not_replicated(&self, confirmed: i64, what: &str) -> JqError {
        let d = self.durability.unwrap_or(Durability {
            replicas: 0,
            timeout_ms: 0,
        });
        JqError::NotReplicated(format!(
            "{what} written on the primary but confirmed by {confirmed} of the {} replica(s) \
             asked within {} ms: they were not rolled back, and a failover before they reach \
             a replica loses them",
            d.replicas, d.timeout_ms
        ))
    }

    /// The arguments of an add_jobs call after the keys and base. Returns which jobs are
    /// delayed.
    pub(crate) fn push_add_jobs_args<'a>(
        &self,
        call: &mut impl ScriptArgs,
        jobs: impl ExactSizeIterator<Item = &'a PreparedJob>,
    ) -> Vec<bool> {
        self.push_jobs_args(call, jobs, false)
    }

    /// As [`Self::push_add_jobs_args`]; with `always_tails` the counts of grouped and
    /// traced jobs come even when 0 (`add_flow.lua`, whose own tail follows them).
    pub(crate) fn push_jobs_args<'a>(
        &self,
        call: &mut impl ScriptArgs,
        jobs: impl ExactSizeIterator<Item = &'a PreparedJob>,
        always_tails: bool,
    ) -> Vec<bool> {
        let jobs: Vec<&PreparedJob> = jobs.collect();
        call.push(LAYOUT_VERSION)
            .push(self.idempotency_ttl_ms)
            .push(jobs.len());
        for job in &jobs {
            call.push(job.job_id.as_deref().unwrap_or(""))
                .push(&job.name)
                .push(&job.data)
                .push(&job.opts)
                .push(job.priority)
                .push(job.delay)
                .push(job.attempts)
                .push(job.idem.as_deref().unwrap_or(""));
        }
        // The groups go after the jobs, only for the jobs that have one (add_jobs.lua).
        let grouped: Vec<(usize, &str)> = jobs
            .iter()
            .enumerate()
            .filter_map(|(index, job)| job.group.as_deref().map(|group| (index + 1, group)))
            .collect();
        // Then the trace contexts, only for the jobs that have one; the groups' count comes
        // first even when it is 0.
        let traced: Vec<(usize, &str)> = jobs
            .iter()
            .enumerate()
            .filter_map(|(index, job)| job.trace.as_deref().map(|trace| (index + 1, trace)))
            .collect();
        if always_tails || !grouped.is_empty() || !traced.is_empty() {
            call.push(grouped.len());
            for (index, group) in grouped {
                call.push(index).push(group);
            }
        }
        if always_tails || !traced.is_empty() {
            call.push(traced.len());
            for (index, trace) in traced {
                call.push(index).push(trace);
            }
        }
        jobs.iter().map(|job| job.delayed()).collect()
    }

    /// [`Self::prepare_job`] for each job, then [`Self::push_add_jobs_args`].
    pub(crate) fn add_jobs_args(
        &self,
        call: &mut impl ScriptArgs,
        jobs: Vec<NewJob<'_>>,
    ) -> PyResult<Vec<bool>> {
        let batch = jobs.len() > 1;
        let prepared = jobs
            .into_iter()
            .enumerate()
            .map(|(index, job)| self.prepare_job(job, batch.then_some(index)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(self.push_add_jobs_args(call, prepared.iter()))
    }
}

#[pymethods]
impl NativeQueue {
    #[new]
    #[pyo3(signature = (
        name, prefix, url, *, tls=false, tls_root_cert=None, tls_client_cert=None,
        tls_client_key=None, connect_timeout_ms=10_000, command_timeout_ms=None,
        ready_check=true, retry_strategy=None, max_payload_bytes=10 * 1024 * 1024,
        idempotency_ttl_ms=86_400_000, on_connect=None, sentinel=None, durability=None,
        cluster=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        prefix: &str,
        url: String,
        tls: bool,
        tls_root_cert: Option<Vec<u8>>,
        tls_client_cert: Option<Vec<u8>>,
        tls_client_key: Option<Vec<u8>>,
        connect_timeout_ms: u64,
        command_timeout_ms: Option<u64>,
        ready_check: bool,
        retry_strategy: Option<Py<PyAny>>,
        max_payload_bytes: usize,
        idempotency_ttl_ms: u64,
        on_connect: Option<Py<PyAny>>,
        sentinel: Option<SentinelArg>,
        durability: Option<(u32, u64)>,
        cluster: Option<Vec<(String, u16)>>,
    ) -> PyResult<Self> {
        let tls = tls.then_some(TlsMaterial {
            root_cert: tls_root_cert,
            client_cert: tls_client_cert,
            client_key: tls_client_key,
        });
        let keys = QueueKeys::new(prefix, name);
        let conn = RedisConn::new(ConnectionOptions {
            url,
            tls,
            connect_timeout: Duration::from_millis(connect_timeout_ms),
            command_timeout: command_timeout_ms.map(Duration::from_millis),
            ready_check,
            retry_strategy,
            settings_check: on_connect.map(SettingsCheck::new),
            upgrade_layout: Some(QueueKeys::new(prefix, name)),
            sentinels: sentinel.map(|(nodes, service, username, password)| Sentinels {
                nodes,
                service,
                username,
                password,
            }),
            cluster: cluster.map(|nodes| ClusterNodes { nodes }),
            home_key: keys.declared().to_string(),
        })?;
        Ok(Self {
            core: Arc::new(QueueCore {
                keys,
                blocking: conn.for_blocking(py)?,
                events: conn.for_blocking(py)?,
                conn,
                max_payload_bytes,
                idempotency_ttl_ms,
                durability: durability.map(|(replicas, timeout_ms)| Durability {
                    replicas,
                    timeout_ms,
                }),
            }),
            blocking_adds: BlockingAdds::default(),
        })
    }

    /// The key prefix of this queue, `prefix:{name}:`.
    #[getter]
    fn key_base(&self) -> &str {
        self.core.keys.base()
    }

    /// Enqueue a batch in one script call. Data is serialized here, with the GIL, so bad
    /// input fails before any I/O. Resolves to `[(id, created, created_at, status), ...]` in
    /// input order; `created` is false when an existing job id or idempotency key matched.
    fn add_jobs<'py>(
        &self,
        py: Python<'py>,
        jobs: Vec<NewJob<'py>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut invocation = scripts::invocation(&scripts::ADD_JOBS, &self.core.keys);
        let jobs_len = jobs.len();
        let delayed = self.core.add_jobs_args(&mut invocation, jobs)?;
        let core = self.core.clone();
        into_awaitable(py, async move {
            let (reply, short): (AddJobsReply, _) = core.write(&invocation).await?;
            if let Some(confirmed) = short {
                return Err(core
                    .not_replicated(confirmed, &format!("{} job(s)", jobs_len))
                    .into());
            }
            Ok(added_jobs(reply, &delayed))
        })
    }

    /// Add one job from a thread that waits for it (the sync facade), batched with the
    /// adds of other threads on the native connection (`blocking_add.rs`). Bad input
    /// raises here, before anything is queued. Returns `(id, created, created_at, status)`.
    fn add_job_blocking(&self, py: Python<'_>, job: NewJob<'_>) -> PyResult<AddedJob> {
        let job = self.core.prepare_job(job, None)?;
        py.detach(|| self.blocking_adds.add(&self.core, job))
            .map_err(Into::into)
    }

    /// A connection for `add_jobs` (and `NativeFlows.add`) whose socket the running
    /// asyncio loop drives (see `loop_conn.rs`): `(endpoint, channel)`, or None when adds
    /// stay on the native connection (TLS, a cluster, durability).
    fn loop_channel(
        &self,
    ) -> PyResult<Option<(crate::loop_conn::Endpoint, crate::loop_conn::LoopChannel)>> {
        crate::loop_conn::LoopChannel::for_queue(&self.core)
    }

    /// Resolves to `(fields, logs, paused)` or None when the job does not exist.
    fn get_job<'py>(&self, py: Python<'py>, job_id: String) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            Ok(read_job(&core.conn, &core.keys, &job_id).await?)
        })
    }

    /// Resolves to `(paused, [(id, fields, logs), ...])`; with a group, of its jobs only.
    #[pyo3(signature = (status, limit, group=None))]
    fn get_jobs<'py>(
        &self,
        py: Python<'py>,
        status: String,
        limit: usize,
        group: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let mut invocation = scripts::invocation(&scripts::GET_JOBS, keys);
            invocation
                .arg(&status)
                .arg(limit)
                .arg(group.as_deref().unwrap_or(""));
            let mut reply: Vec<Value> = core.conn.invoke(&invocation).await?;
            if reply.is_empty() {
                return Err(JqError::Redis("empty reply from get_jobs".into()).into());
            }
            let paused: i64 = parse(reply.remove(0))?;
            let jobs = reply
                .into_iter()
                .map(parse::<(String, HashMap<String, String>, Vec<String>)>)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((paused == 1, jobs))
        })
    }

    /// Resolves to `(waiting, active, completed, failed, delayed, dlq, paused, latency_ms,
    /// waiting_children)`.
    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let invocation = scripts::invocation(&scripts::GET_STATS, keys);
            let v: Vec<i64> = core.conn.invoke(&invocation).await?;
            if v.len() != 9 {
                return Err(
                    JqError::Redis(format!("get_stats returned {} values", v.len())).into(),
                );
            }
            Ok((v[0], v[1], v[2], v[3], v[4], v[5], v[6] == 1, v[7], v[8]))
        })
    }

    fn remove_job<'py>(&self, py: Python<'py>, job_id: String) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            Ok(remove_job_in(&core.conn, &core.keys, &job_id).await?)
        })
    }

    /// Resolves to the number of jobs removed.
    fn drain<'py>(&self, py: Python<'py>, include_delayed: bool) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let mut total: i64 = 0;
            loop {
                let mut invocation = scripts::invocation(&scripts::DRAIN, keys);
                invocation
                    .arg(CLEANUP_BATCH)
                    .arg(if include_delayed { "1" } else { "0" });
                let (removed, left): (i64, i64) = core.conn.invoke(&invocation).await?;
                total += removed;
                if left == 0 || removed == 0 {
                    return Ok(total);
                }
            }
        })
    }

    /// Resolves to the number of jobs removed.
    fn clear<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let mut total: i64 = 0;
            let mut cursor = "0".to_string();
            loop {
                let mut invocation = scripts::invocation(&scripts::CLEAR, keys);
                invocation.arg(CLEANUP_BATCH).arg(&cursor);
                let (removed, next): (i64, String) = core.conn.invoke(&invocation).await?;
                total += removed;
                if removed == 0 && next == "0" {
                    return Ok(total);
                }
                cursor = next;
            }
        })
    }

    fn set_paused<'py>(&self, py: Python<'py>, paused: bool) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let mut invocation = scripts::invocation(&scripts::SET_PAUSED, &core.keys);
            invocation.arg(if paused { "1" } else { "0" });
            let _: i64 = core.conn.invoke(&invocation).await?;
            Ok(())
        })
    }

    /// Move failed/DLQ jobs back to waiting with attempts reset: `mode` "job" (one id in
    /// `target`), "failed" or "dlq" (up to `target` jobs, "-1" for all). Resolves to the
    /// ids moved.
    fn retry_jobs<'py>(
        &self,
        py: Python<'py>,
        mode: String,
        target: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let mut invocation = scripts::invocation(&scripts::RETRY_JOBS, keys);
            invocation.arg(&mode).arg(&target);
            let ids: Vec<String> = core.conn.invoke(&invocation).await?;
            Ok(ids)
        })
    }

    /// Create or replace a schedule; resolves to its next run (ms).
    fn upsert_schedule<'py>(
        &self,
        py: Python<'py>,
        schedule_id: String,
        definition: String,
        signature: String,
        first_run: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let mut inv = scripts::invocation(&scripts::UPSERT_SCHEDULE, keys);
            inv.arg(LAYOUT_VERSION)
                .arg(schedule_id)
                .arg(definition)
                .arg(signature)
                .arg(first_run);
            let next: i64 = core.conn.invoke(&inv).await?;
            Ok(next)
        })
    }

    /// Claim tick(s) of a due schedule; resolves to `(claimed, [(created job id, tick)])`.
    fn claim_schedule<'py>(
        &self,
        py: Python<'py>,
        schedule_id: String,
        expected: i64,
        next_run: i64,
        ticks: Vec<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let mut inv = scripts::invocation(&scripts::CLAIM_SCHEDULE, keys);
            inv.arg(LAYOUT_VERSION)
                .arg(core.idempotency_ttl_ms)
                .arg(schedule_id)
                .arg(expected)
                .arg(next_run)
                .arg(ticks.len());
            for tick in &ticks {
                inv.arg(*tick);
            }
            let mut reply: Vec<Value> = core.conn.invoke(&inv).await?;
            if reply.is_empty() {
                return Err(JqError::Redis("empty reply from claim_schedule".into()).into());
            }
            let claimed: i64 = parse(reply.remove(0))?;
            let created: Vec<(String, i64)> = parse(Value::Array(reply))?;
            Ok((claimed == 1, created))
        })
    }

    /// Resolves to `(server now, (id, next run, definition JSON) or None)`.
    fn next_schedule<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let inv = scripts::invocation(&scripts::NEXT_SCHEDULE, keys);
            let mut reply: Vec<Value> = core.conn.invoke(&inv).await?;
            if reply.is_empty() {
                return Err(JqError::Redis("empty reply from next_schedule".into()).into());
            }
            let now: i64 = parse(reply.remove(0))?;
            if reply.is_empty() {
                return Ok((now, None));
            }
            let head: (String, i64, String) = parse(Value::Array(reply))?;
            Ok((now, Some(head)))
        })
    }

    /// Resolves to `[(id, definition JSON, next run or -1, last run or -1), ...]`.
    fn list_schedules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let inv = scripts::invocation(&scripts::LIST_SCHEDULES, keys);
            let rows: Vec<(String, String, i64, i64)> = core.conn.invoke(&inv).await?;
            Ok(rows)
        })
    }

    /// Resolves to True when the schedule existed.
    fn unschedule<'py>(&self, py: Python<'py>, schedule_id: String) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let keys = &core.keys;
            let mut inv = scripts::invocation(&scripts::UNSCHEDULE, keys);
            inv.arg(schedule_id);
            let removed: i64 = core.conn.invoke(&inv).await?;
            Ok(removed == 1)
        })
    }

    /// Wait (without polling) until a schedule is added or changed, or `timeout_ms`
    /// passes; resolves to True when woken by a change.
    fn wait_schedule_change<'py>(
        &self,
        py: Python<'py>,
        timeout_ms: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let seconds = (timeout_ms as f64 / 1000.0).max(0.001);
            let mut cmd = redis::cmd("BLPOP");
            cmd.arg(&core.keys.schedules_wake)
                .arg(format!("{seconds:.3}"));
            let popped: Value = core.blocking.query(&cmd).await?;
            Ok(!matches!(popped, Value::Nil))
        })
    }

    /// Entries of the fleet events stream after entry id `after`, waiting up to `block_ms`
    /// for the first: resolves to `[(entry id, events JSON), ...]` (empty on timeout).
    /// With `after=None` it resolves at once to `[(newest entry id, "[]")]` ("0-0" for an
    /// empty stream): the position from which a new reader follows.
    #[pyo3(signature = (after, count, block_ms))]
    fn read_events<'py>(
        &self,
        py: Python<'py>,
        after: Option<String>,
        count: usize,
        block_ms: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let Some(after) = after else {
                let mut cmd = redis::cmd("XREVRANGE");
                cmd.arg(&core.keys.events)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1);
                let newest: Vec<StreamEntry> = core.conn.query(&cmd).await?;
                let position = newest.into_iter().next().map(|(id, _)| id);
                return Ok(vec![(
                    position.unwrap_or_else(|| "0-0".into()),
                    "[]".to_string(),
                )]);
            };
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(count.max(1))
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&core.keys.events)
                .arg(after);
            let reply: Option<Vec<(String, Vec<StreamEntry>)>> = core.events.query(&cmd).await?;
            Ok(reply
                .into_iter()
                .flatten()
                .flat_map(|(_, entries)| entries)
                .map(|(id, fields)| (id, event_payload(fields)))
                .collect())
        })
    }

    /// The Redis server's clock, in ms since the epoch.
    fn server_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let (seconds, micros): (i64, i64) = core.conn.query(&redis::cmd("TIME")).await?;
            Ok(seconds * 1000 + micros / 1000)
        })
    }

    /// Resolves once the main connection is open (and passed its settings check).
    fn connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            core.conn.get().await?;
            Ok(())
        })
    }

    /// Resolves to `(rtt_ms, redis_version, live_workers)`; raises when Redis is unreachable.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            // Connect first so that the round trip measures Redis, not the handshake.
            core.conn.get().await?;
            let started = Instant::now();
            let _: String = core.conn.query(&redis::cmd("PING")).await?;
            let rtt_ms = started.elapsed().as_secs_f64() * 1000.0;
            let info: String = core.conn.query(redis::cmd("INFO").arg("server")).await?;
            let version = info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("unknown")
                .trim()
                .to_string();
            let invocation = scripts::invocation(&scripts::HEALTH, &core.keys);
            let workers: i64 = core.conn.invoke(&invocation).await?;
            Ok((rtt_ms, version, workers, core.conn.evalsha_reason()))
        })
    }

    /// Drop the connections. Later calls would reconnect; `JobQueue` forbids them.
    fn close(&self) {
        self.core.conn.close();
        self.core.blocking.close();
        self.core.events.close();
    }
}
