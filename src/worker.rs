//! The native worker core: the fetch loop, batched acknowledgements, lock renewal and the
//! stalled-job sweep, all on the Tokio runtime.
//!
//! Python sees: `take_batch()` (the jobs and outcomes waiting, taken when `wake_fd`
//! becomes readable), `complete_many()` / `fail()` (non-blocking: they queue acks) and
//! `close()`. Everything that waits on Redis or on a timer happens here, without the GIL,
//! so a processor that blocks the event loop cannot lose its locks, and no runtime thread
//! ever waits for the GIL to hand jobs over.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use serde::Deserialize;
use tokio::sync::{mpsc, Notify};

use crate::ack_args::{push_entries, AckEntry};
use crate::backoff::Backoff;
use crate::connection::RedisConn;
use crate::errors::JqError;
use crate::groups::push_ack_tail;
use crate::handover::Handover;
use crate::json::{to_json, to_json_named};
use crate::partitions::Part;
use crate::queue::{NativeQueue, QueueCore};
use crate::record::Record;
use crate::registry::WorkerCounts;
use crate::runtime::{handle, into_awaitable};
use crate::scripts;
use crate::wake::WakePipe;

/// Acks written per script call: large enough to amortise the round trip, small enough
/// to keep one script short.
const ACK_BATCH: usize = 500;
/// Longest a worker blocks on the wake-up marker before looking again.
pub(crate) const MAX_BLOCK_MS: u64 = 5_000;
/// Wait before retrying a Redis call that failed (connection trouble).
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Log lines kept per job.
pub const MAX_LOG_LINES: usize = 1000;

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct Keep {
    count: Option<i64>,
    age: Option<i64>,
}

impl Keep {
    fn args(&self) -> (i64, i64) {
        (self.count.unwrap_or(-1), self.age.unwrap_or(-1))
    }
}

/// The part of a job's options JSON the worker core needs.
#[derive(Clone, Debug, Deserialize)]
struct JobOpts {
    attempts: u32,
    backoff: Backoff,
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    remove_on_complete: Keep,
    #[serde(default)]
    remove_on_fail: Keep,
}

pub(crate) struct ActiveJob {
    /// The partition the job lives in (0 on an unpartitioned queue).
    part: usize,
    token: String,
    name: String,
    /// Its group: the ack frees the group's slot without reading the job.
    group: Option<String>,
    /// A flow's child: its parent ref with policy; the ack tells the parent.
    parent: Option<String>,
    attempts_made: u32,
    opts: JobOpts,
    lock_lost: bool,
}

#[derive(Clone)]
enum AckKind {
    Completed(Vec<u8>),
    Failed {
        reason: String,
        stacktrace: String,
        retryable: bool,
    },
}

#[derive(Clone)]
struct Ack {
    id: String,
    kind: AckKind,
    /// Deliver the outcome to Python once written. Python skips it for completions that
    /// nothing listens to (no handler, metrics or waiter): one crossing less per job.
    report: bool,
}

/// A job as the fetch script returns it: (id, record, options text (None: the previous
/// job's; empty: inline in the record), None for a first attempt or "attempts made \x1f
/// progress JSON").
type FetchedJob = (String, Vec<u8>, Option<String>, Option<String>);

/// (attempts made, progress JSON) of a job that ran before, from the fetch reply's text; a
/// count that does not parse (a run state damaged by hand) reads as a first attempt.
fn parse_rerun(text: &str) -> (u32, String) {
    let (attempts, progress) = text.split_once('\x1f').unwrap_or((text, ""));
    (attempts.parse().unwrap_or(1), progress.to_string())
}
/// A job handed to Python: (id, name, data JSON, opts JSON, attempts made, max attempts,
/// timeout ms, created_at, processed_at, progress JSON, group, (trace context, parent ref
/// with its failure policy in front: a flow's child)). The fields
/// Python needs for every job come decoded, so it decodes the options only if a processor
/// reads them; the lock token stays here.
pub type JobTuple = (
    String,
    String,
    String,
    String,
    u32,
    u32,
    Option<u64>,
    i64,
    i64,
    String,
    Option<String>,
    (Option<String>, Option<String>),
);
/// What became of a job: (outcome, id, name, attempts made, max attempts, reason, delay).
/// Outcomes: completed, retrying, failed, dlq, lost (the lock was gone: nothing written),
/// stalled (back to waiting), stalled-failed, stalled-dlq; and error (a background Redis
/// call failed: the name field says what was being done, the reason what went wrong).
type OutcomeTuple = (String, String, String, u32, u32, Option<String>, u64);

enum Delivery {
    Job(JobTuple),
    Outcome(OutcomeTuple),
    /// The fetch loop has ended: every job it took was delivered before this.
    FetchStopped,
}

#[derive(Clone, Copy)]
struct Settings {
    lock_duration_ms: u64,
    lock_renew_ms: u64,
    stalled_interval_ms: u64,
    max_stalled_count: u32,
    dlq_enabled: bool,
    limiter_window_ms: u64,
    /// A partitioned queue's rate limit, taken for the whole queue from partition 0's
    /// window before each fetch (`partitions::take_rate`); 0: none, or a plain queue
    /// (whose fetch applies its limit itself).
    queue_limiter_max: u64,
}

pub(crate) struct Shared {
    /// Partition 0 (the queue itself on an unpartitioned queue): the blocking wait and
    /// the worker registry's first entry are there.
    pub(crate) queue: Arc<QueueCore>,
    /// Every partition, partition 0 first (one entry on an unpartitioned queue), with its
    /// share of the rate limit and whether its acks wake workers (see `partitions.rs`).
    pub(crate) parts: Vec<Part>,
    pub(crate) blocking: RedisConn,
    settings: Settings,
    worker_id: String,
    fetch_seq: AtomicU64,
    active: Mutex<HashMap<String, ActiveJob>>,
    /// Fetched jobs on their way to the processors (see `handover.rs`).
    pub(crate) handover: Handover<JobTuple>,
    /// Taken (dropped) by `close()` once nothing more can be delivered; `take_batch()`
    /// then answers None.
    deliveries: Mutex<Option<mpsc::UnboundedSender<Delivery>>>,
    /// Tells the event loop that deliveries are waiting (see `wake.rs`).
    wake: WakePipe,
    pub(crate) fetching: AtomicBool,
    pub(crate) stop_fetching: Notify,
    /// The partitioned fetch loop's mailbox (`partitions.rs`): partitions this worker's
    /// own acks and sweeps found work in.
    pub(crate) local_wakes: crate::partitions::LocalWakes,
    /// A partitioned queue's global concurrency: slots granted to a fetch not yet made
    /// (`partitions::take_slots`; the lock also orders this worker's slot calls).
    pub(crate) slots_pending: tokio::sync::Mutex<usize>,
    /// A partitioned queue has a global concurrency: set by the slots calls, and turned on
    /// by a fetch of partition 0 that reports one (a limit set while the worker runs).
    pub(crate) slots_on: AtomicBool,
    stop_timers: Notify,
    /// The fixed part of this worker's description in the registry (`registry.rs`).
    description: String,
    counts: WorkerCounts,
}

impl Shared {
    /// Hand a job over to Python now, or keep it until a processor slot frees.
    fn hand_over(&self, job: JobTuple) {
        self.handover
            .offer(job.0.clone(), job, |job| self.deliver(Delivery::Job(job)));
    }

    /// A delivered job finished: its slot goes to the next kept job.
    fn job_finished(&self, id: &str) {
        self.handover.finish(
            id,
            |job| self.deliver(Delivery::Job(job)),
            || self.deliver(Delivery::FetchStopped),
        );
    }

    fn deliver(&self, delivery: Delivery) {
        let sender = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = sender.as_ref() {
            // The receiver is gone only when the worker object is; nobody waits then.
            let _ = sender.send(delivery);
            self.wake.signal();
        }
    }

    /// Report a failed Redis call of a background loop to Python (`QUEUE_ERROR`); the
    /// loop itself retries.
    pub(crate) fn report(&self, doing: &str, err: &JqError) {
        self.deliver(Delivery::Outcome((
            "error".into(),
            String::new(),
            doing.into(),
            0,
            0,
            Some(err.to_string()),
            0,
        )));
    }

    /// This worker's id and lock duration (a partitioned queue's slot lease).
    pub(crate) fn lease(&self) -> (&str, u64) {
        (&self.worker_id, self.settings.lock_duration_ms)
    }

    /// How many jobs this worker holds.
    pub(crate) fn held(&self) -> usize {
        self.active_jobs().len()
    }

    /// A partitioned queue's rate limit as (max, window ms), if it has one.
    pub(crate) fn queue_rate_limit(&self) -> Option<(u64, u64)> {
        let s = &self.settings;
        (s.queue_limiter_max > 0).then_some((s.queue_limiter_max, s.limiter_window_ms))
    }

    fn active_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, ActiveJob>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pyclass(frozen, module = "jobqueue._native")]
pub struct NativeWorker {
    shared: Arc<Shared>,
    acks: Mutex<Option<mpsc::UnboundedSender<Ack>>>,
    ack_rx: Mutex<Option<mpsc::UnboundedReceiver<Ack>>>,
    deliveries: Mutex<mpsc::UnboundedReceiver<Delivery>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[pymethods]
impl NativeWorker {
    #[new]
    #[pyo3(signature = (
        queue, *, concurrency, lock_duration_ms, lock_renew_ms, stalled_interval_ms,
        max_stalled_count, dlq_enabled, limiter_max=0, limiter_window_ms=0,
        partitions=Vec::new(), description=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        queue: &NativeQueue,
        concurrency: usize,
        lock_duration_ms: u64,
        lock_renew_ms: u64,
        stalled_interval_ms: u64,
        max_stalled_count: u32,
        dlq_enabled: bool,
        limiter_max: u64,
        limiter_window_ms: u64,
        partitions: Vec<PyRef<'_, NativeQueue>>,
        description: Option<String>,
    ) -> PyResult<Self> {
        // `partitions`: the other partitions of a partitioned queue; empty on a plain
        // queue, whose fetch applies the rate limit. A partitioned queue's limit is the
        // whole queue's, taken before each fetch (`partitions::take_rate`): no partition's
        // fetch applies one.
        let (own_limit, queue_limiter_max) = if partitions.is_empty() {
            (limiter_max, 0)
        } else {
            (0, limiter_max)
        };
        let mut parts = vec![Part::new(queue.core.clone(), own_limit)];
        parts.extend(
            partitions
                .iter()
                .map(|native| Part::new(native.core.clone(), 0)),
        );
        let (deliveries_tx, deliveries_rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: queue.core.clone(),
            parts,
            blocking: queue.core.conn.for_blocking(py)?,
            settings: Settings {
                lock_duration_ms,
                lock_renew_ms,
                stalled_interval_ms,
                max_stalled_count,
                dlq_enabled,
                limiter_window_ms,
                queue_limiter_max,
            },
            worker_id: format!("{:016x}", fastrand::u64(..)),
            fetch_seq: AtomicU64::new(0),
            active: Mutex::new(HashMap::new()),
            // A rate limit counts jobs when they are fetched: prefetching would spend the
            // window on jobs that are not running yet.
            handover: Handover::new(concurrency, if limiter_max > 0 { 0 } else { concurrency }),
            deliveries: Mutex::new(Some(deliveries_tx)),
            wake: WakePipe::new()?,
            fetching: AtomicBool::new(true),
            stop_fetching: Notify::new(),
            local_wakes: Default::default(),
            slots_pending: tokio::sync::Mutex::new(0),
            slots_on: AtomicBool::new(false),
            stop_timers: Notify::new(),
            description: description.unwrap_or_default(),
            counts: WorkerCounts::default(),
        });
        Ok(Self {
            shared,
            acks: Mutex::new(Some(ack_tx)),
            ack_rx: Mutex::new(Some(ack_rx)),
            deliveries: Mutex::new(deliveries_rx),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// This worker's id (also its member in the queue's `workers` set).
    #[getter]
    fn worker_id(&self) -> &str {
        &self.shared.worker_id
    }

    /// Start the fetch loop, the ack flusher and the timers.
    fn start(&self) -> PyResult<()> {
        let Some(ack_rx) = self.ack_rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(()); // already started
        };
        let rt = handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.push(rt.spawn(fetch_loop(self.shared.clone())));
        tasks.push(rt.spawn(ack_loop(self.shared.clone(), ack_rx)));
        tasks.push(rt.spawn(renew_loop(self.shared.clone())));
        tasks.push(rt.spawn(stalled_loop(self.shared.clone())));
        tasks.push(rt.spawn(requeue_loop(self.shared.clone())));
        Ok(())
    }

    /// The descriptor that becomes readable when deliveries wait; the event loop watches
    /// it (`add_reader`) and then calls `take_batch`.
    #[getter]
    fn wake_fd(&self) -> i32 {
        self.shared.wake.read_fd()
    }

    /// What waits to be handed over: `(jobs, outcomes, fetch_stopped)` (possibly empty),
    /// or None once the worker is closed and everything was delivered. `fetch_stopped` is
    /// true in the batch that carries the last jobs ever fetched. Never blocks.
    #[allow(clippy::type_complexity)]
    fn take_batch(&self) -> Option<(Vec<JobTuple>, Vec<OutcomeTuple>, bool)> {
        self.shared.wake.clear();
        let mut rx = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        let mut jobs = Vec::new();
        let mut outcomes = Vec::new();
        let mut fetch_stopped = false;
        loop {
            match rx.try_recv() {
                Ok(Delivery::Job(j)) => jobs.push(j),
                Ok(Delivery::Outcome(o)) => outcomes.push(o),
                Ok(Delivery::FetchStopped) => fetch_stopped = true,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    if jobs.is_empty() && outcomes.is_empty() && !fetch_stopped {
                        return None;
                    }
                    break;
                }
            }
        }
        Some((jobs, outcomes, fetch_stopped))
    }

    /// Record successful attempts, many in one crossing: `[(job id, return value), ...]`.
    /// Returns `[(job id, error), ...]` for the values that are not JSON; those record
    /// nothing. With `report` false, only a lost lock is reported back, not the completion.
    #[pyo3(signature = (completed, report=true))]
    fn complete_many(
        &self,
        completed: Vec<(String, Bound<'_, PyAny>)>,
        report: bool,
    ) -> PyResult<Vec<(String, String)>> {
        let mut refused = Vec::new();
        for (job_id, value) in completed {
            match to_json_named(&value, || format!("return value of job {job_id}")) {
                Ok(json) => self.send_ack(Ack {
                    id: job_id,
                    kind: AckKind::Completed(json),
                    report,
                })?,
                Err(err) => refused.push((job_id, err.to_string())),
            }
        }
        Ok(refused)
    }

    /// Record a failed attempt; the core decides retry, final failure or DLQ.
    /// `retryable=false` fails the job for good whatever attempts remain.
    #[pyo3(signature = (job_id, reason, stacktrace, retryable=true))]
    fn fail(
        &self,
        job_id: String,
        reason: String,
        stacktrace: String,
        retryable: bool,
    ) -> PyResult<()> {
        self.send_ack(Ack {
            id: job_id,
            kind: AckKind::Failed {
                reason,
                stacktrace,
                retryable,
            },
            report: true,
        })
    }

    /// Save progress (JSON) or a log line of a running job; resolves to False when this
    /// worker no longer holds the job.
    fn update<'py>(
        &self,
        py: Python<'py>,
        job_id: String,
        kind: String,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let payload = if kind == "progress" {
            to_json(value, "progress")?
        } else {
            value.extract::<String>()?.into_bytes()
        };
        let held = self
            .shared
            .active_jobs()
            .get(&job_id)
            .map(|job| (job.token.clone(), job.part));
        let (token, part) = held.unzip();
        let queue = self.shared.parts[part.unwrap_or(0)].core.clone();
        into_awaitable(py, async move {
            let Some(token) = token else {
                return Ok(false);
            };
            let keys = &queue.keys;
            let mut inv = scripts::invocation(&scripts::UPDATE_JOB, keys);
            inv.arg(&job_id)
                .arg(token)
                .arg(kind)
                .arg(payload)
                .arg(MAX_LOG_LINES);
            let applied: i64 = queue.conn.invoke(&inv).await?;
            Ok(applied == 1)
        })
    }

    /// The children of the flow parent `job_id` (a job this worker runs, or any job of
    /// partition 0): `[(child ref, state)]` as `NativeFlows.children` gives them.
    fn children<'py>(&self, py: Python<'py>, job_id: String) -> PyResult<Bound<'py, PyAny>> {
        let part = self
            .shared
            .active_jobs()
            .get(&job_id)
            .map_or(0, |job| job.part);
        let queue = self.shared.parts[part].core.clone();
        into_awaitable(py, async move {
            Ok(crate::flows::children_of(&queue.conn, &queue.keys, &job_id).await?)
        })
    }

    /// Stop taking new jobs (jobs already handed over still finish and are acked).
    fn stop_fetching(&self) {
        self.shared.fetching.store(false, Ordering::SeqCst);
        self.shared.stop_fetching.notify_waiters();
        self.shared.stop_fetching.notify_one();
    }

    /// Flush the pending acks, stop the timers and leave the queue's worker registry.
    /// Call after the processors finished (or were abandoned). With `timeout_ms`, work
    /// still unfinished at the deadline (acks that Redis could not take) is cut off: those
    /// jobs keep their lapsing locks and run again after stall recovery.
    #[pyo3(signature = (timeout_ms=None))]
    fn close<'py>(&self, py: Python<'py>, timeout_ms: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
        self.stop_fetching();
        // Dropping the sender ends the ack loop once it has written everything queued.
        self.acks.lock().unwrap_or_else(|e| e.into_inner()).take();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = timeout_ms.map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
        let shared = self.shared.clone();
        into_awaitable(py, async move {
            let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
            let mut tasks = tasks.into_iter();
            // The fetch loop and the ack loop end by themselves now; the timers do not.
            let loops: Vec<_> = tasks.by_ref().take(2).collect();
            let finished = until(deadline, async {
                for task in loops {
                    let _ = task.await;
                }
                leave_registry(&shared).await;
            })
            .await;
            shared.stop_timers.notify_waiters();
            for abort in aborts {
                abort.abort();
            }
            for task in tasks {
                let _ = task.await;
            }
            shared
                .deliveries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            shared.wake.signal(); // the event loop learns that nothing more will come
            Ok(finished)
        })
    }
}

/// Run `work` to its end, or until `deadline`; true when it finished.
async fn until(deadline: Option<tokio::time::Instant>, work: impl Future<Output = ()>) -> bool {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.is_ok(),
        None => {
            work.await;
            true
        }
    }
}

impl NativeWorker {
    /// Queue an outcome for the ack loop and free the job's slot: a slot is a running
    /// processor, so the fetch loop takes the next job while the outcome is being written
    /// (waiting for the write made the worker wait on Redis round trips instead of running
    /// jobs: +40% on the drain benchmark at concurrency 50).
    fn send_ack(&self, ack: Ack) -> PyResult<()> {
        let closed = || JqError::InvalidState("the worker is closed".into()).into();
        let guard = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = guard.as_ref() else {
            return Err(closed());
        };
        // Before the send, which takes the id: the receiver lives as long as the sender.
        self.shared.job_finished(&ack.id);
        tx.send(ack).map_err(|_| closed())
    }
}

/// Take jobs while there is room for them; block on the wake-up marker when there are none.
async fn fetch_loop(shared: Arc<Shared>) {
    if shared.parts.len() > 1 {
        crate::partitions::take_jobs(&shared).await;
    } else {
        take_jobs(&shared).await;
    }
    // Tells Python that no job will follow (after the kept ones), so that a closing
    // worker knows it has every job it must finish.
    shared
        .handover
        .fetch_ended(|| shared.deliver(Delivery::FetchStopped));
}

async fn take_jobs(shared: &Arc<Shared>) {
    let mut marker_wait: Option<MarkerWait> = None;
    // The last wait ended with a wake-up taken from the marker.
    let mut woken = false;
    loop {
        if !shared.fetching.load(Ordering::SeqCst) {
            return;
        }
        // Take as many jobs as there is room for; with none, wait for a job to finish.
        let want = shared.handover.room();
        if want == 0 {
            // A wake-up this worker cannot use goes on to the next idle worker: else a job
            // returned by a busy worker (`requeue`) could wait for a timeout.
            if std::mem::take(&mut woken) {
                pass_wake_up(shared).await;
            }
            let pending_wake_up = async {
                match marker_wait.as_mut() {
                    Some(wait) => wait.await,
                    None => std::future::pending().await,
                }
            };
            let answered = tokio::select! {
                _ = shared.handover.wait_freed() => None,
                answer = pending_wake_up => Some(answer),
                _ = shared.stop_fetching.notified() => return,
            };
            if let Some(answer) = answered {
                marker_wait = None;
                woken = matches!(answer, Ok(ref value) if *value != redis::Value::Nil);
            }
            continue;
        }
        woken = false;
        match fetch(shared, 0, want).await {
            Ok(fetched) => {
                if fetched.taken == 0 || fetched.exhausted {
                    woken = wait_for_work(shared, fetched.wait_ms, &mut marker_wait).await;
                }
            }
            Err(err) => {
                shared.report("fetching jobs", &err);
                pause_unless_stopped(&shared.stop_fetching, RETRY_PAUSE).await;
            }
        }
    }
}

/// Put a wake-up back on the marker for another worker.
async fn pass_wake_up(shared: &Shared) {
    let mut cmd = redis::cmd("RPUSH");
    cmd.arg(&shared.queue.keys.marker).arg("1");
    if let Err(err) = shared.queue.conn.query::<i64>(&cmd).await {
        shared.report("waking another worker", &err);
    }
}

pub(crate) async fn pause_unless_stopped(stop: &Notify, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.notified() => {}
    }
}

/// The next value of a fetch reply, converted.
fn next_fetched<T: redis::FromRedisValue>(
    reply: &mut std::vec::IntoIter<redis::Value>,
) -> Result<T, JqError> {
    let value = reply
        .next()
        .ok_or_else(|| JqError::Redis("short fetch reply".into()))?;
    redis::FromRedisValue::from_redis_value(value)
        .map_err(|e| JqError::Redis(format!("bad fetch reply: {e}")))
}

/// What one fetch found.
pub(crate) struct Fetched {
    pub(crate) taken: usize,
    /// How long to block at most before looking again, when the worker waits.
    pub(crate) wait_ms: u64,
    /// No waiting job was left: the next job comes with a wake-up, so the worker waits for
    /// one instead of asking again.
    pub(crate) exhausted: bool,
}

/// One fetch script call, on partition `part`.
pub(crate) async fn fetch(shared: &Shared, part: usize, want: usize) -> Result<Fetched, JqError> {
    let this = &shared.parts[part];
    let keys = &this.core.keys;
    let s = &shared.settings;
    let seq = shared.fetch_seq.fetch_add(1, Ordering::Relaxed);
    let mut inv = scripts::invocation(&scripts::FETCH, keys);
    inv.arg(want)
        .arg(s.lock_duration_ms)
        .arg(format!("{}-{seq}", shared.worker_id))
        .arg(this.limiter_max)
        .arg(s.limiter_window_ms);
    let reply: Vec<redis::Value> = this.core.conn.invoke(&inv).await?;
    let mut reply = reply.into_iter();
    let now: i64 = next_fetched(&mut reply)?;
    let next_due: i64 = next_fetched(&mut reply)?;
    let limited_for: i64 = next_fetched(&mut reply)?;
    let exhausted: i64 = next_fetched(&mut reply)?;
    let global_limit: i64 = next_fetched(&mut reply)?;
    this.wake_on_ack.store(global_limit == 1, Ordering::Relaxed);
    if part == 0 && global_limit == 1 && shared.parts.len() > 1 {
        shared.slots_on.store(true, Ordering::Relaxed);
    }
    let _grouped: usize = next_fetched(&mut reply)?; // the jobs say their groups
    let token: String = next_fetched(&mut reply)?;
    let mut taken = 0;
    // The options text comes once per run of jobs that share it: decoded once.
    let mut last_opts: Option<(String, JobOpts)> = None;
    while reply.len() > 0 {
        // The reply is flat, 4 values per job (fetch.lua); a tuple's fields are evaluated
        // in order.
        let (id, raw, opts_sent, rerun): FetchedJob = (
            next_fetched(&mut reply)?,
            next_fetched(&mut reply)?,
            next_fetched(&mut reply)?,
            next_fetched(&mut reply)?,
        );
        let token = token.clone();
        let (attempts_made, progress) = match rerun {
            None => (1, String::new()),
            Some(text) => parse_rerun(&text),
        };
        taken += 1;
        let record = Record::parse(&raw);
        let name = record.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        let group = record.as_ref().ok().and_then(|r| r.group.clone());
        let parent = record.as_ref().ok().and_then(|r| r.parent.clone());
        let decoded = record.and_then(|record| {
            let opts_json = match opts_sent {
                Some(text) if text.is_empty() => record.inline_opts.clone(),
                Some(text) => text,
                None => match &last_opts {
                    Some((text, _)) => text.clone(),
                    None => return Err("the fetch reply gave no options text".to_string()),
                },
            };
            let opts = match &last_opts {
                Some((text, opts)) if *text == opts_json => opts.clone(),
                _ => {
                    let opts = serde_json::from_str::<JobOpts>(&opts_json)
                        .map_err(|e| format!("job options are unreadable by this worker: {e}"))?;
                    last_opts = Some((opts_json.clone(), opts.clone()));
                    opts
                }
            };
            Ok((record, opts_json, opts))
        });
        match decoded {
            Ok((record, opts_json, opts)) => {
                let (max_attempts, timeout) = (opts.attempts, opts.timeout);
                shared.active_jobs().insert(
                    id.clone(),
                    ActiveJob {
                        part,
                        token,
                        name: name.clone(),
                        group: group.clone(),
                        parent: parent.clone(),
                        attempts_made,
                        opts,
                        lock_lost: false,
                    },
                );
                shared.hand_over((
                    id,
                    name,
                    record.data,
                    opts_json,
                    attempts_made,
                    max_attempts,
                    timeout,
                    record.created_at,
                    now,
                    progress,
                    group,
                    (record.trace, parent),
                ));
            }
            Err(reason) => {
                // A job this version cannot read: fail it for good rather than loop on it.
                shared.active_jobs().insert(
                    id.clone(),
                    ActiveJob {
                        part,
                        token,
                        name,
                        group,
                        parent,
                        attempts_made,
                        opts: JobOpts {
                            attempts: attempts_made,
                            backoff: serde_json::from_str(r#"{"type":"fixed","delay":0}"#)
                                .expect("static backoff"),
                            timeout: None,
                            remove_on_complete: Keep::default(),
                            remove_on_fail: Keep::default(),
                        },
                        lock_lost: false,
                    },
                );
                let written = write_acks(
                    shared,
                    part,
                    &[Ack {
                        id: id.clone(),
                        kind: AckKind::Failed {
                            reason,
                            stacktrace: String::new(),
                            retryable: false,
                        },
                        report: true,
                    }],
                )
                .await;
                if written.is_err() {
                    // Stop renewing it: its lock lapses and the stalled sweep takes over.
                    shared.active_jobs().remove(&id);
                }
            }
        }
    }
    let wait_ms = if limited_for > 0 {
        limited_for as u64
    } else if next_due > 0 {
        (next_due - now).max(1) as u64
    } else {
        MAX_BLOCK_MS
    };
    Ok(Fetched {
        taken,
        wait_ms: wait_ms.min(MAX_BLOCK_MS),
        exhausted: exhausted == 1,
    })
}

/// A BLPOP on the wake-up marker, kept across waits until Redis answers it.
pub(crate) type MarkerWait = Pin<Box<dyn Future<Output = Result<redis::Value, JqError>> + Send>>;

/// Wait until the marker says there may be work, `wait_ms` passes, or the worker stops.
///
/// Redis times a blocked BLPOP out only to within 1/hz (100 ms by default), too coarse for
/// a delayed job's due time; so the due time is kept by a local timer and the BLPOP, with a
/// long timeout, only reports new work. When the timer fires first the BLPOP stays pending
/// (dropping it would let its answer swallow a later wake-up) and the next wait reuses it.
/// Returns true when the marker answered with a wake-up.
async fn wait_for_work(
    shared: &Arc<Shared>,
    wait_ms: u64,
    pending: &mut Option<MarkerWait>,
) -> bool {
    let marker_wait = pending.get_or_insert_with(|| {
        let shared = shared.clone();
        Box::pin(async move {
            let mut cmd = redis::cmd("BLPOP");
            cmd.arg(&shared.queue.keys.marker)
                .arg(format!("{:.3}", MAX_BLOCK_MS as f64 / 1000.0));
            shared.blocking.query::<redis::Value>(&cmd).await
        })
    });
    tokio::select! {
        result = marker_wait => {
            *pending = None;
            match result {
                Ok(value) => value != redis::Value::Nil,
                Err(err) => {
                    shared.report("waiting for jobs", &err);
                    pause_unless_stopped(&shared.stop_fetching, RETRY_PAUSE).await;
                    false
                }
            }
        }
        _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => false,
        _ = shared.stop_fetching.notified() => false,
    }
}

/// Write acks in batches (their slots were freed when they were queued).
async fn ack_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Ack>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < ACK_BATCH {
            match rx.try_recv() {
                Ok(ack) => batch.push(ack),
                Err(_) => break,
            }
        }
        loop {
            match write_acks_by_part(&shared, &batch).await {
                Ok(()) => break,
                // Never drop an outcome: wait and write it again. If the lock expires
                // meanwhile, the write finds it gone and the job runs again elsewhere.
                Err(err) => {
                    shared.report("writing job results", &err);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
}

/// The outcome recorded for one ack, decided here from the job's attempts and options.
struct Decision<'a> {
    outcome: &'static str,
    value: &'a [u8],
    stacktrace: &'a str,
    delay: u64,
    keep: Keep,
}

/// Borrows the ack's value and stack trace: a batch that fails to write is written again.
fn decide<'a>(job: &ActiveJob, kind: &'a AckKind, dlq_enabled: bool) -> Decision<'a> {
    match kind {
        AckKind::Completed(value) => Decision {
            outcome: "completed",
            value,
            stacktrace: "",
            delay: 0,
            keep: job.opts.remove_on_complete,
        },
        AckKind::Failed {
            reason,
            stacktrace,
            retryable,
        } => {
            let (outcome, delay) = if *retryable && job.attempts_made < job.opts.attempts {
                ("retry", job.opts.backoff.delay(job.attempts_made))
            } else if dlq_enabled {
                ("dlq", 0)
            } else {
                ("failed", 0)
            };
            Decision {
                outcome,
                value: reason.as_bytes(),
                stacktrace,
                delay,
                keep: job.opts.remove_on_fail,
            }
        }
    }
}

/// Write a batch of acks, one script call per partition of its jobs (one call on an
/// unpartitioned queue). A partition written is not written again when another fails.
async fn write_acks_by_part(shared: &Shared, batch: &[Ack]) -> Result<(), JqError> {
    if shared.parts.len() == 1 {
        return write_acks(shared, 0, batch).await;
    }
    let mut by_part: Vec<Vec<Ack>> = (0..shared.parts.len()).map(|_| Vec::new()).collect();
    {
        let active = shared.active_jobs();
        for ack in batch {
            // A job this worker does not hold is reported lost by any partition's call.
            let part = active.get(&ack.id).map_or(0, |job| job.part);
            by_part[part].push(ack.clone());
        }
    }
    for (part, acks) in by_part.iter().enumerate() {
        // Retried here, partition by partition: a partition written is not written again
        // (its jobs are forgotten, so a second write would report them lost).
        while !acks.is_empty() {
            match write_acks(shared, part, acks).await {
                Ok(()) => break,
                Err(err) => {
                    shared.report("writing job results", &err);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
    crate::partitions::sync_slots(shared).await; // the acks freed slots
    Ok(())
}

async fn write_acks(shared: &Shared, part: usize, batch: &[Ack]) -> Result<(), JqError> {
    // (id, token, name, attempts, max attempts, decision, report) of each entry to write.
    let mut entries = Vec::with_capacity(batch.len());
    let mut groups = Vec::new();
    let mut children = Vec::new();
    // A job's first result in the batch is the one written (ack.lua applies each entry
    // against the run state read before any of them).
    let mut written = std::collections::HashSet::with_capacity(batch.len());
    {
        let active = shared.active_jobs();
        for ack in batch {
            let held = active
                .get(&ack.id)
                .filter(|_| written.insert(ack.id.as_str()));
            match held {
                Some(job) => {
                    let decision = decide(job, &ack.kind, shared.settings.dlq_enabled);
                    if let Some(group) = &job.group {
                        groups.push((entries.len() + 1, group.clone()));
                    }
                    if let Some(parent) = &job.parent {
                        children.push((entries.len() + 1, parent.clone()));
                    }
                    entries.push((
                        ack.id.as_str(),
                        job.token.clone(),
                        job.name.clone(),
                        job.attempts_made,
                        job.opts.attempts,
                        decision,
                        ack.report,
                    ));
                }
                None => shared.deliver(Delivery::Outcome((
                    "lost".into(),
                    ack.id.clone(),
                    String::new(),
                    0,
                    0,
                    Some("this worker does not hold the job".into()),
                    0,
                ))),
            }
        }
    }
    if entries.is_empty() {
        return Ok(());
    }
    let this = &shared.parts[part];
    let keys = &this.core.keys;
    let mut inv = scripts::invocation(&scripts::ACK, keys);
    let args: Vec<AckEntry<'_>> = entries
        .iter()
        .map(|(id, token, name, attempts, _, d, _)| AckEntry {
            id,
            token,
            outcome: d.outcome,
            value: d.value,
            keep: d.keep.args(),
            name,
            attempts: *attempts,
            stacktrace: d.stacktrace,
            delay: d.delay,
        })
        .collect();
    push_entries(&mut inv, &args);
    let wake = this.wake_on_ack.load(Ordering::Relaxed);
    push_ack_tail(&mut inv, wake, groups.iter().map(|(i, g)| (*i, g.as_str())));
    if !children.is_empty() {
        // The flows' tail (ack.lua), only when the batch holds a flow's child; after the
        // wake flag and the groups' count, which push_ack_tail leaves out when unneeded.
        if !wake && groups.is_empty() {
            inv.arg(0).arg(0);
        }
        inv.arg(children.len());
        for (index, parent) in &children {
            inv.arg(index).arg(parent);
        }
    }
    let (reply, short): (Vec<redis::Value>, _) = this.core.write(&inv).await?;
    let (applied, outboxed) = split_ack_reply(reply, entries.len())?;
    if let Some(confirmed) = short {
        // Applied on the primary: writing it again would find the locks gone. Reported.
        let what = format!("results of {} job(s)", entries.len());
        shared.report(
            "writing job results",
            &this.core.not_replicated(confirmed, &what),
        );
    }
    if shared.parts.len() > 1 {
        // Retries due later in this partition: this worker looks again then. An ack that
        // frees a slot of a global concurrency wakes the partition's waiting workers.
        let retry_in = entries
            .iter()
            .filter(|e| e.5.outcome == "retry")
            .map(|e| e.5.delay)
            .min();
        // A flow's children may have released their parent here: look again now.
        let retry_in = if children.is_empty() {
            retry_in
        } else {
            Some(0)
        };
        crate::partitions::after_acks(shared, part, retry_in, wake).await;
    }
    if !outboxed.is_empty() {
        // Children whose parent is in another slot: hand their outcomes over now. A failure
        // here leaves them in the outbox, for the stalled sweep's replay.
        let from = this.core.keys.clone();
        if let Err(err) = crate::flows::hand_over_outbox(&this.core, from, outboxed).await {
            shared.report("telling flow parents of their children", &err);
        }
    }
    let mut active = shared.active_jobs();
    for ((id, token, name, attempts, max_attempts, d, report), ok) in
        entries.into_iter().zip(applied)
    {
        forget_attempt(&mut active, id, &token);
        let outcome = match (ok, d.outcome) {
            (0, _) => "lost",
            (_, "retry") => "retrying",
            (_, other) => other,
        };
        shared.counts.count(outcome);
        if outcome == "completed" && !report {
            continue;
        }
        let reason =
            (d.outcome != "completed").then(|| String::from_utf8_lossy(d.value).into_owned());
        shared.deliver(Delivery::Outcome((
            outcome.to_string(),
            id.to_string(),
            name,
            attempts,
            max_attempts,
            reason,
            d.delay,
        )));
    }
    Ok(())
}

/// ack.lua's reply: the applied flags (1/0) of the `entries` entries, then the time it ran,
/// then the flow outbox entries it pushed.
fn split_ack_reply(
    reply: Vec<redis::Value>,
    entries: usize,
) -> Result<(Vec<i64>, Vec<String>), JqError> {
    let mut reply = reply.into_iter();
    let applied = reply
        .by_ref()
        .take(entries)
        .map(redis::FromRedisValue::from_redis_value)
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|e| JqError::Redis(format!("unexpected ack reply: {e}")))?;
    let _ran_at = reply.next();
    let outboxed = reply
        .map(redis::FromRedisValue::from_redis_value)
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| JqError::Redis(format!("unexpected ack reply: {e}")))?;
    Ok((applied, outboxed))
}

/// Renew the locks of this worker's jobs and its heartbeat in the workers registry.
async fn renew_loop(shared: Arc<Shared>) {
    let period = Duration::from_millis(shared.settings.lock_renew_ms);
    loop {
        if let Err(err) = renew(&shared).await {
            shared.report("renewing locks", &err);
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shared.stop_timers.notified() => return,
        }
    }
}

async fn renew(shared: &Shared) -> Result<(), JqError> {
    // Every partition: the heartbeat registers the worker in each one's registry.
    for part in 0..shared.parts.len() {
        renew_part(shared, part).await?;
    }
    crate::partitions::sync_slots(shared).await; // extends the slots' lease
    Ok(())
}

async fn renew_part(shared: &Shared, part: usize) -> Result<(), JqError> {
    let this = &shared.parts[part].core;
    let keys = &this.keys;
    let held: Vec<(String, String)> = shared
        .active_jobs()
        .iter()
        .filter(|(_, job)| !job.lock_lost && job.part == part)
        .map(|(id, job)| (id.clone(), job.token.clone()))
        .collect();
    // A worker is alive while its heartbeat deadline (two renew periods ahead) holds.
    let heartbeat = shared.settings.lock_renew_ms * 2 + 1000;
    let description = shared
        .counts
        .describe(&shared.description, shared.handover.running());
    let mut inv = scripts::invocation(&scripts::EXTEND_LOCKS, keys);
    inv.arg(shared.settings.lock_duration_ms)
        .arg(&shared.worker_id)
        .arg(heartbeat)
        .arg(description);
    for (id, token) in &held {
        inv.arg(id).arg(token);
    }
    let lost: Vec<String> = this.conn.invoke(&inv).await?;
    let sent: HashMap<&str, &str> = held
        .iter()
        .map(|(id, token)| (id.as_str(), token.as_str()))
        .collect();
    let mut active = shared.active_jobs();
    for id in lost {
        // Only the attempt renewed: the job may run here again under a new token.
        if let Some(job) = active.get_mut(&id) {
            if sent.get(id.as_str()) == Some(&job.token.as_str()) {
                job.lock_lost = true;
            }
        }
    }
    Ok(())
}

async fn leave_registry(shared: &Shared) {
    for part in &shared.parts {
        let mut inv = scripts::invocation(&scripts::EXTEND_LOCKS, &part.core.keys);
        inv.arg(shared.settings.lock_duration_ms)
            .arg(&shared.worker_id)
            .arg(-1)
            .arg("");
        let _: Result<Vec<String>, _> = part.core.conn.invoke(&inv).await;
    }
}

/// Return kept jobs that waited `KEEP_BOUND` for a slot to the head of the queue, where
/// any idle worker takes them (see `handover.rs`).
async fn requeue_loop(shared: Arc<Shared>) {
    loop {
        let wait = async {
            match shared.handover.next_overdue() {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => shared.handover.wait_kept().await,
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = shared.stop_timers.notified() => return,
        }
        let overdue = shared
            .handover
            .take_overdue(|| shared.deliver(Delivery::FetchStopped));
        if !overdue.is_empty() {
            if let Err(err) = requeue(&shared, &overdue).await {
                shared.report("returning prefetched jobs to the queue", &err);
            }
        }
    }
}

async fn requeue(shared: &Shared, jobs: &[(String, JobTuple)]) -> Result<(), JqError> {
    let mut result = Ok(());
    for part in 0..shared.parts.len() {
        let core = &shared.parts[part].core;
        let mut inv = scripts::invocation(&scripts::RELEASE, &core.keys);
        let mut sent = Vec::with_capacity(jobs.len());
        {
            let active = shared.active_jobs();
            for (id, _) in jobs {
                if let Some(job) = active.get(id).filter(|job| job.part == part) {
                    inv.arg(id).arg(&job.token).arg(job.attempts_made - 1);
                    sent.push((id, job.token.clone()));
                }
            }
        }
        if sent.is_empty() {
            continue;
        }
        // Whatever the outcome, this worker no longer holds them: on a failed call their
        // locks lapse and the stalled sweep returns them instead.
        let written = core.conn.invoke::<Vec<i64>>(&inv).await;
        {
            let mut active = shared.active_jobs();
            for (id, token) in sent {
                forget_attempt(&mut active, id, &token);
            }
        }
        match written {
            Ok(_) if shared.parts.len() > 1 => crate::partitions::wake(shared, part).await,
            Ok(_) => {}
            Err(err) => result = Err(err),
        }
    }
    crate::partitions::sync_slots(shared).await;
    result
}

/// Stop tracking the attempt of job `id` under lock `token`. A job given back to the queue
/// (released, or retried without backoff) may have been fetched again by this worker
/// before the reply came: that new attempt, under its own token, stays tracked.
fn forget_attempt(active: &mut HashMap<String, ActiveJob>, id: &str, token: &str) {
    if active.get(id).is_some_and(|job| job.token == token) {
        active.remove(id);
    }
}

/// Recover stalled jobs of the whole queue every `max_stalled_interval`.
async fn stalled_loop(shared: Arc<Shared>) {
    let period = Duration::from_millis(shared.settings.stalled_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shared.stop_timers.notified() => return,
        }
        if let Err(err) = sweep(&shared).await {
            shared.report("recovering stalled jobs", &err);
        }
    }
}

async fn sweep(shared: &Shared) -> Result<(), JqError> {
    for part in 0..shared.parts.len() {
        let recovered = sweep_part(shared, part).await?;
        if recovered && shared.parts.len() > 1 {
            crate::partitions::wake(shared, part).await;
        }
    }
    Ok(())
}

/// Returns whether jobs went back to waiting.
async fn sweep_part(shared: &Shared, part: usize) -> Result<bool, JqError> {
    let core = &shared.parts[part].core;
    let keys = &core.keys;
    let mut inv = scripts::invocation(&scripts::STALLED, keys);
    inv.arg(shared.settings.max_stalled_count)
        .arg(if shared.settings.dlq_enabled {
            "1"
        } else {
            "0"
        });
    let flat: Vec<(String, String, String)> = core.conn.invoke(&inv).await?;
    // Flow outcomes a killed worker left in the outbox, and those of children the sweep
    // just failed, go to their parents' slots.
    crate::flows::replay_outbox(core, keys).await?;
    let recovered = flat.iter().any(|(_, _, state)| state == "waiting");
    for (id, name, state) in flat {
        let outcome = match state.as_str() {
            "waiting" => "stalled",
            "dlq" => "stalled-dlq",
            _ => "stalled-failed",
        };
        shared.deliver(Delivery::Outcome((outcome.into(), id, name, 0, 0, None, 0)));
    }
    Ok(recovered)
}
