//! The stored partition count of a partitioned queue (docs/redis-layout.md, "Partitions").
//!
//! A queue of N > 1 partitions records N in the string `P:{Q}:partitions` of its
//! partition 0 (whose keys are those an unpartitioned queue of the same name uses), so
//! that every process of the queue agrees on N. It is not a field of the meta hash: fetch
//! tells a plain queue by a meta hash of one field, and partition 0 should keep that fast
//! path. Everything else about partitions is routing, done in Python
//! (`jobqueue/partitions.py`): each partition is a queue of its own hash tag, and every
//! script still runs in one slot.

use pyo3::prelude::*;

use crate::queue::NativeQueue;
use crate::runtime::into_awaitable;

/// Claims or reads the count in one atomic step (KEYS: the count, the meta hash). A queue
/// without a count but with a meta hash is a queue used unpartitioned (`1`): it is not
/// claimed, so turning a live queue into a partitioned one is refused rather than leaving
/// its running processes serving partition 0 alone. A count of 1 is never written (an
/// unpartitioned queue pays nothing and gets no key).
const CLAIM: &str = r"
local stored = redis.call('GET', KEYS[1])
if stored then return stored end
if ARGV[1] == '1' or redis.call('EXISTS', KEYS[2]) == 1 then return '1' end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
";

/// Resolves to the queue's stored partition count, claiming `requested` on a queue that
/// has never been written. `queue` must be partition 0.
#[pyfunction]
pub fn partition_count<'py>(
    py: Python<'py>,
    queue: &NativeQueue,
    requested: u32,
) -> PyResult<Bound<'py, PyAny>> {
    let core = queue.core.clone();
    into_awaitable(py, async move {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM)
            .arg(2)
            .arg(format!("{}partitions", core.keys.base()))
            .arg(&core.keys.meta)
            .arg(requested.to_string());
        let stored: String = core.conn.query(&cmd).await?;
        Ok(stored.parse::<u32>().unwrap_or(0))
    })
}

// -- One fetch loop over every partition ----------------------------------------------------
//
// A worker of a partitioned queue is one `NativeWorker` over all the partitions: one fetch
// loop, one blocking wait, one set of processor slots. The loop keeps a line of partitions
// that may have work (all of them at the start, from a random one) and visits them in
// turn, one fetch each; a partition that answers "nothing left" leaves the line, so an
// empty partition costs no round trip per fetch. It comes back on a wake-up, when a
// delayed job or rate window it reported comes due, or on the sweep: every `MAX_BLOCK_MS`
// while the worker waits (one fetch per partition: the safety net for wake-ups lost with a
// worker), every `BUSY_SWEEP` while it keeps fetching. A busy worker takes no wake-ups
// (it waits for none while its line has partitions), so without the short sweep a
// partition that went empty and got new jobs would wait for the long one while the
// others keep the worker saturated; the short sweep costs one fetch per partition that
// is out of the line per `BUSY_SWEEP`, nothing when every partition has work.
//
// Wake-ups: a blocking call cannot span slots, so the one blocking wait is a BLPOP on two
// lists of partition 0's slot: partition 0's own marker (its scripts push "1" there, as on
// a plain queue) and the wake list `<base of partition 0>pwake`, which holds `p<i>` for
// partitions i that got work (at most one entry per partition: LPOS first). A script of
// partition i cannot write to partition 0's slot on a cluster, so the entry is pushed by
// whoever called it: the producer after an add (one small call per add call that created
// jobs in partitions > 0), the admin calls that make jobs runnable (resume, retries,
// group limits), and the workers (released jobs, stalled jobs, acks that free a global
// concurrency slot; a worker that took a partition's wake-up and left runnable jobs there
// passes it on once, for another idle worker).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::errors::JqError;
use crate::queue::QueueCore;
use crate::scripts;
use crate::worker::{fetch, pause_unless_stopped, MarkerWait, Shared, MAX_BLOCK_MS, RETRY_PAUSE};

/// How often a worker that keeps fetching visits the partitions out of its line (above).
const BUSY_SWEEP: Duration = Duration::from_secs(1);

/// One partition as a worker sees it.
pub(crate) struct Part {
    pub(crate) core: Arc<QueueCore>,
    /// The rate limit its fetch applies: a plain queue's (0: none); 0 on a partitioned
    /// queue, whose limit is the whole queue's ([`take_rate`]).
    pub(crate) limiter_max: u64,
    /// Its fetch said it has a global concurrency: acks wake waiting workers.
    pub(crate) wake_on_ack: AtomicBool,
}

impl Part {
    pub(crate) fn new(core: Arc<QueueCore>, limiter_max: u64) -> Self {
        Self {
            core,
            limiter_max,
            wake_on_ack: AtomicBool::new(false),
        }
    }
}

/// Partitions this worker should look at again at a time (its retries' due times).
#[derive(Default)]
pub(crate) struct LocalWakes {
    due: Mutex<Vec<(usize, Instant)>>,
    notify: Notify,
}

impl LocalWakes {
    fn at(&self, part: usize, when: Instant) {
        self.due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((part, when));
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<(usize, Instant)> {
        std::mem::take(&mut *self.due.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn wake_key(first: &QueueCore) -> String {
    format!("{}pwake", first.keys.base())
}

/// Push `p<i>` for each partition given onto the wake list, unless it is there already
/// (`lua/wake_partitions.lua`).
async fn push_wakes(first: &QueueCore, parts: &[usize]) -> Result<(), JqError> {
    let mut inv = scripts::invocation(&scripts::WAKE_PARTITIONS, &first.keys);
    for part in parts {
        inv.arg(format!("p{part}"));
    }
    first.conn.invoke::<i64>(&inv).await.map(|_| ())
}

/// Starts of a partitioned queue's rate window (partition 0's `limiter`): how many a
/// worker may fetch, and those it took and did not use, given back with its next
/// [`RateWindow::take`] or before it waits (so other workers may use them).
struct RateWindow {
    /// (max, window ms), if the queue has a rate limit.
    limit: Option<(u64, u64)>,
    /// Starts taken and not used, and the end of the window they came from (server ms).
    unused: usize,
    unused_end: i64,
    /// The window is full until then: no fetch before it.
    closed_until: Option<Instant>,
}

impl RateWindow {
    /// Take up to `want` starts, giving back the unused ones first (`lua/take_rate.lua`).
    /// Returns (starts granted, ms until the window reopens).
    async fn take(&mut self, shared: &Shared, want: usize) -> Result<(usize, u64), JqError> {
        let Some((max, window_ms)) = self.limit else {
            return Ok((want, 0));
        };
        let mut inv = scripts::invocation(&scripts::TAKE_RATE, &shared.queue.keys);
        inv.arg(want)
            .arg(self.unused)
            .arg(self.unused_end)
            .arg(max)
            .arg(window_ms);
        // On an error the starts to give back may or may not have been given: they are
        // kept as spent (never more starts than the limit).
        self.unused = 0;
        let (granted, reopens_ms, end) =
            shared.queue.conn.invoke::<(usize, u64, i64)>(&inv).await?;
        self.unused_end = end;
        Ok((granted, reopens_ms))
    }

    /// `granted` starts were taken for a fetch that took `taken` jobs.
    fn used(&mut self, granted: usize, taken: usize) {
        if self.limit.is_some() {
            self.unused += granted.saturating_sub(taken);
        }
    }

    async fn flush(&mut self, shared: &Shared) {
        if self.unused > 0 {
            if let Err(err) = self.take(shared, 0).await {
                shared.report("giving back rate-limit starts", &err);
            }
        }
    }

    fn closed(&mut self, now: Instant) -> bool {
        if self.closed_until.is_some_and(|at| at <= now) {
            self.closed_until = None;
        }
        self.closed_until.is_some()
    }
}

/// Whether the queue has a global concurrency, as the last slots call said, or a later
/// fetch of partition 0 (whose meta hash holds the limit) found one.
fn slots_on(shared: &Shared) -> bool {
    shared.slots_on.load(Ordering::Relaxed)
}

/// Tell partition 0 how many jobs this worker holds, plus slots granted to a fetch not yet
/// made, and take up to `want` more slots of the queue's global concurrency
/// (`lua/take_slots.lua`; also extends this worker's lease). Returns the slots granted
/// (`want` when the queue has no global concurrency) and, when fewer, the ms until the
/// earliest lease of another worker ends (a crashed worker's slots come back then).
async fn take_slots(shared: &Shared, want: usize) -> Result<(usize, u64), JqError> {
    let mut pending = shared.slots_pending.lock().await;
    let (worker, lease_ms) = shared.lease();
    let mut inv = scripts::invocation(&scripts::TAKE_SLOTS, &shared.queue.keys);
    inv.arg(worker)
        .arg(want)
        .arg(shared.held() + *pending)
        .arg(lease_ms);
    let (on, granted, retry_ms): (i64, usize, u64) = shared.queue.conn.invoke(&inv).await?;
    shared.slots_on.store(on == 1, Ordering::Relaxed);
    if want == 0 {
        return Ok((0, 0));
    }
    *pending = if on == 1 { granted } else { 0 };
    Ok(if on == 1 {
        (granted, retry_ms)
    } else {
        (want, 0)
    })
}

/// The fetch that used the slots granted is done: its jobs are held (or none came).
async fn slots_used(shared: &Shared) {
    *shared.slots_pending.lock().await = 0;
}

/// After acks, releases and lock renewals: the jobs this worker holds now, so freed slots
/// go to other workers and its lease is extended (a call only on a partitioned queue
/// with a global concurrency).
pub(crate) async fn sync_slots(shared: &Shared) {
    if slots_on(shared) {
        if let Err(err) = take_slots(shared, 0).await {
            shared.report("updating global concurrency slots", &err);
        }
    }
}

/// Tell the queue's idle workers that partition `part` has work.
pub(crate) async fn wake(shared: &Shared, part: usize) {
    if let Err(err) = push_wakes(&shared.queue, &[part]).await {
        shared.report("waking other workers", &err);
    }
}

/// After an ack batch on `part`: look again when its earliest retry is due; wake waiting
/// workers when the acks freed slots of a global concurrency.
pub(crate) async fn after_acks(shared: &Shared, part: usize, retry_in: Option<u64>, freed: bool) {
    if let Some(ms) = retry_in {
        shared
            .local_wakes
            .at(part, Instant::now() + Duration::from_millis(ms));
    }
    if freed {
        wake(shared, part).await;
    }
}

/// Resolves when partitions `parts` of the queue whose partition 0 is `queue` have been
/// marked as having work (called by producers and admin calls: see above).
#[pyfunction]
pub fn wake_partitions<'py>(
    py: Python<'py>,
    queue: &NativeQueue,
    parts: Vec<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let core = queue.core.clone();
    into_awaitable(py, async move {
        if !parts.is_empty() {
            push_wakes(&core, &parts).await?;
        }
        Ok(())
    })
}

/// The partitions to visit, in turn, each at most once.
struct Line {
    order: VecDeque<usize>,
    queued: Vec<bool>,
}

impl Line {
    fn push(&mut self, part: usize) {
        if !std::mem::replace(&mut self.queued[part], true) {
            self.order.push_back(part);
        }
    }

    fn pop(&mut self) -> Option<usize> {
        let part = self.order.pop_front()?;
        self.queued[part] = false;
        Some(part)
    }
}

fn keep_earliest(slot: &mut Option<Instant>, at: Instant) {
    if slot.is_none_or(|current| at < current) {
        *slot = Some(at);
    }
}

/// The partition a BLPOP answer names (None: timed out).
fn woken_part(shared: &Shared, answer: &redis::Value) -> Option<usize> {
    let redis::Value::Array(items) = answer else {
        return None;
    };
    let [key, value] = items.as_slice() else {
        return None;
    };
    let key: String = redis::FromRedisValue::from_redis_value(key.clone()).ok()?;
    if key == shared.queue.keys.marker {
        return Some(0);
    }
    let value: String = redis::FromRedisValue::from_redis_value(value.clone()).ok()?;
    value
        .strip_prefix('p')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|part| *part < shared.parts.len())
}

fn wait_for_wake(shared: &Arc<Shared>) -> MarkerWait {
    let shared = shared.clone();
    Box::pin(async move {
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg(&shared.queue.keys.marker)
            .arg(wake_key(&shared.queue))
            .arg(format!("{:.3}", MAX_BLOCK_MS as f64 / 1000.0));
        shared.blocking.query::<redis::Value>(&cmd).await
    })
}

/// A wake-up this worker cannot use (no free slot) goes back for another worker.
async fn pass_on(shared: &Shared, part: usize) {
    let result = if part == 0 {
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(&shared.queue.keys.marker).arg("1");
        shared.queue.conn.query::<i64>(&cmd).await.map(|_| ())
    } else {
        push_wakes(&shared.queue, &[part]).await
    };
    if let Err(err) = result {
        shared.report("waking another worker", &err);
    }
}

/// The fetch loop of a worker of a partitioned queue (see above).
pub(crate) async fn take_jobs(shared: &Arc<Shared>) {
    let count = shared.parts.len();
    let idle_sweep = Duration::from_millis(MAX_BLOCK_MS);
    let mut line = Line {
        order: VecDeque::with_capacity(count),
        queued: vec![false; count],
    };
    let start = fastrand::usize(..count);
    for i in 0..count {
        line.push((start + i) % count);
    }
    let mut due: Vec<Option<Instant>> = vec![None; count];
    let mut last_sweep = Instant::now();
    // Partitions this worker took a wake-up for from the wake list: when it leaves jobs
    // there (no room), it passes the wake-up on once, for another idle worker.
    let mut woken = vec![false; count];
    let mut pending: Option<MarkerWait> = None;
    let mut rate = RateWindow {
        limit: shared.queue_rate_limit(),
        unused: 0,
        unused_end: 0,
        closed_until: None,
    };
    // Whether the queue has a global concurrency: asked once here, then told by every
    // fetch of partition 0 and every slots call.
    if let Err(err) = take_slots(shared, 0).await {
        shared.report("reading the global concurrency", &err);
    }
    // Refused slots by the global concurrency: no fetch until a wake-up or a sweep.
    let mut slots_closed: Option<Instant> = None;
    let mut slots_unused = false;
    loop {
        if !shared.fetching.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        for (part, at) in shared.local_wakes.take() {
            keep_earliest(&mut due[part], at);
        }
        for (part, slot) in due.iter_mut().enumerate() {
            if slot.is_some_and(|at| at <= now) {
                *slot = None;
                line.push(part);
            }
        }
        let sweep_every = if line.order.is_empty() {
            idle_sweep
        } else {
            BUSY_SWEEP
        };
        if now >= last_sweep + sweep_every {
            (0..count).for_each(|part| line.push(part));
            last_sweep = now;
        }
        let want = shared.handover.room();
        let rate_closed = rate.closed(now) || slots_closed.is_some_and(|at| at > now);
        if want == 0 || rate_closed || line.order.is_empty() {
            rate.flush(shared).await; // about to wait: unused starts go to other workers
            if std::mem::take(&mut slots_unused) {
                sync_slots(shared).await; // and unused slots
            }
        }
        if want == 0 {
            let answer = async {
                match pending.as_mut() {
                    Some(wait) => wait.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shared.handover.wait_freed() => {}
                answer = answer => {
                    pending = None;
                    if let Some(part) = answer.ok().and_then(|a| woken_part(shared, &a)) {
                        pass_on(shared, part).await;
                        line.push(part); // the wake-up went on: no need to pass it again
                    }
                }
                _ = shared.stop_fetching.notified() => return,
            }
            continue;
        }
        // While the queue's rate window is full, the line waits (nothing popped).
        let next = if rate_closed { None } else { line.pop() };
        let Some(part) = next else {
            // Whatever ends this wait (a wake-up, a timer), ask for slots again after it.
            let slots_retry = slots_closed.take();
            let until = due
                .iter()
                .flatten()
                .chain(rate.closed_until.iter())
                .chain(slots_retry.iter())
                .fold(last_sweep + idle_sweep, |a, b| a.min(*b));
            let wait = pending.get_or_insert_with(|| wait_for_wake(shared));
            tokio::select! {
                answer = wait => {
                    pending = None;
                    match answer {
                        Ok(answer) => {
                            if let Some(part) = woken_part(shared, &answer) {
                                woken[part] = part > 0; // partition 0's fetch passes its own
                                line.push(part);
                            }
                        }
                        Err(err) => {
                            shared.report("waiting for jobs", &err);
                            pause_unless_stopped(&shared.stop_fetching, RETRY_PAUSE).await;
                        }
                    }
                }
                _ = tokio::time::sleep_until(until) => {}
                _ = shared.local_wakes.notify.notified() => {}
                _ = shared.stop_fetching.notified() => return,
            }
            continue;
        };
        let want = match rate.take(shared, want).await {
            Ok((0, reopens_ms)) => {
                line.push(part);
                rate.closed_until = Some(Instant::now() + Duration::from_millis(reopens_ms));
                continue;
            }
            Ok((granted, _)) => granted,
            Err(err) => {
                shared.report("taking rate-limit starts", &err);
                line.push(part);
                pause_unless_stopped(&shared.stop_fetching, RETRY_PAUSE).await;
                continue;
            }
        };
        let rate_granted = want;
        let want = if slots_on(shared) {
            match take_slots(shared, want).await {
                Ok((0, retry_ms)) => {
                    rate.used(rate_granted, 0);
                    line.push(part);
                    // No lease to wait for: the idle sweep (or a wake-up when slots free).
                    let retry_ms = if retry_ms == 0 {
                        MAX_BLOCK_MS
                    } else {
                        retry_ms
                    };
                    slots_closed = Some(Instant::now() + Duration::from_millis(retry_ms));
                    continue;
                }
                Ok((granted, _)) => granted,
                Err(err) => {
                    rate.used(rate_granted, 0);
                    shared.report("taking global concurrency slots", &err);
                    line.push(part);
                    pause_unless_stopped(&shared.stop_fetching, RETRY_PAUSE).await;
                    continue;
                }
            }
        } else {
            want
        };
        let outcome = fetch(shared, part, want).await;
        slots_used(shared).await;
        // Slots granted and not used are still counted as this worker's until its next
        // slots call: before it waits, it makes one.
        slots_unused = slots_on(shared) && outcome.as_ref().map_or(true, |f| f.taken < want);
        // A failed call may have taken jobs: its starts are kept as spent.
        rate.used(rate_granted, outcome.as_ref().map_or(want, |f| f.taken));
        match outcome {
            Ok(fetched) if fetched.taken > 0 && !fetched.exhausted => {
                line.push(part); // its turn again after the others'
                if std::mem::take(&mut woken[part]) {
                    wake(shared, part).await; // jobs are left: another idle worker may help
                }
            }
            Ok(fetched) => {
                woken[part] = false;
                if fetched.wait_ms < MAX_BLOCK_MS {
                    let at = Instant::now() + Duration::from_millis(fetched.wait_ms);
                    keep_earliest(&mut due[part], at);
                }
            }
            Err(err) => {
                shared.report("fetching jobs", &err);
                line.push(part);
                pause_unless_stopped(&shared.stop_fetching, RETRY_PAUSE).await;
            }
        }
    }
}
