//! Single adds from many blocking threads (the sync facade), batched here without the
//! event loop: handing each add to the loop's thread and back cost several thread
//! wake-ups and GIL hand-overs per add, far more than the add.
//!
//! A caller's job is prepared (serialized, size-checked) with the GIL, so bad input raises
//! in its own caller before anything is queued. Then, without the GIL, the caller queues
//! it: the first caller to find no batch in flight leads. The leader sends every queued
//! job (up to the coalescing bounds of `loop_conn.rs`) as one add_jobs call on the native
//! connection, hands each caller of the batch its own outcome, and passes the lead to the
//! first caller queued meanwhile, which sends the next batch. While one batch is on the
//! wire the next one gathers, so batches grow with the number of callers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard};

use crate::errors::JqError;
use crate::loop_conn::{MAX_BATCH_BYTES, MAX_BATCH_JOBS};
use crate::queue::{added_jobs, AddJobsReply, AddedJob, PreparedJob, QueueCore};
use crate::runtime;
use crate::scripts;

/// What a waiting caller is told: its job's outcome, or to lead the next batch.
enum Turn {
    Done(Result<AddedJob, JqError>),
    Lead,
}

struct Waiter {
    job: PreparedJob,
    turn: SyncSender<Turn>,
}

#[derive(Default)]
struct State {
    /// The process the queue and flag belong to: a child of `fork()` inherits both but
    /// not the threads that wait or lead (see `runtime::current_pid`).
    pid: u32,
    queued: Vec<Waiter>,
    /// Whether a leader is sending a batch (or about to); callers then queue and wait.
    leading: bool,
}

/// The batching state of one queue's blocking adds.
#[derive(Default)]
pub(crate) struct BlockingAdds {
    state: Mutex<State>,
}

impl BlockingAdds {
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pid = runtime::current_pid();
        if state.pid != pid {
            // Inherited through fork(): its waiters and leader do not exist here.
            state.queued.clear();
            state.leading = false;
            state.pid = pid;
        }
        state
    }

    /// Add `job` and wait for its outcome. Call without the GIL: the leader blocks on the
    /// Tokio runtime, and the others on their channel.
    pub(crate) fn add(&self, core: &QueueCore, job: PreparedJob) -> Result<AddedJob, JqError> {
        // Capacity 1: a leader's `send` never blocks, and a caller gets at most one
        // message at a time (Lead, then later Done; or Done alone).
        let (turn, inbox) = sync_channel(1);
        let lead = {
            let mut state = self.state();
            state.queued.push(Waiter { job, turn });
            !std::mem::replace(&mut state.leading, true)
        };
        if !lead {
            match inbox.recv() {
                Ok(Turn::Done(outcome)) => return outcome,
                Ok(Turn::Lead) => {}
                Err(_) => return Err(lost()),
            }
        }
        self.lead(core);
        outcome_of(&inbox)
    }

    /// Send the queued jobs (the leader's own first) and settle their callers.
    fn lead(&self, core: &QueueCore) {
        let batch = {
            let mut state = self.state();
            let mut bytes = 0;
            let take = state
                .queued
                .iter()
                .take(MAX_BATCH_JOBS)
                .take_while(|w| {
                    let first = bytes == 0;
                    bytes += w.job.size().max(1);
                    first || bytes <= MAX_BATCH_BYTES
                })
                .count();
            state.queued.drain(..take).collect::<Vec<_>>()
        };
        // A panic must still settle the batch and pass the lead: the callers queued
        // behind it would wait forever otherwise.
        let outcomes = catch_unwind(AssertUnwindSafe(|| send(core, &batch))).unwrap_or_else(|_| {
            let error = JqError::Redis("the add_jobs call of this batch panicked".into());
            vec![Err(error); batch.len()]
        });
        // Pass the lead before settling this batch, so the next one is on its way while
        // this batch's callers wake.
        let successor = {
            let mut state = self.state();
            match state.queued.first() {
                Some(next) => Some(next.turn.clone()),
                None => {
                    state.leading = false;
                    None
                }
            }
        };
        if let Some(successor) = successor {
            let _ = successor.send(Turn::Lead);
        }
        for (waiter, outcome) in batch.into_iter().zip(outcomes) {
            let _ = waiter.turn.send(Turn::Done(outcome));
        }
    }
}

/// The leader's own outcome, which its batch put in its inbox.
fn outcome_of(inbox: &Receiver<Turn>) -> Result<AddedJob, JqError> {
    match inbox.try_recv() {
        Ok(Turn::Done(outcome)) => outcome,
        _ => Err(lost()),
    }
}

fn lost() -> JqError {
    JqError::Connection("the thread sending this add stopped before it had a reply".into())
}

/// One add_jobs call for the batch, blocking on the runtime: one outcome per job, in order.
fn send(core: &QueueCore, batch: &[Waiter]) -> Vec<Result<AddedJob, JqError>> {
    let mut invocation = scripts::invocation(&scripts::ADD_JOBS, &core.keys);
    let delayed = core.push_add_jobs_args(&mut invocation, batch.iter().map(|w| &w.job));
    let reply = runtime::handle().block_on(core.write::<AddJobsReply>(&invocation));
    let error = match reply {
        Ok((reply, None)) => {
            let added = added_jobs(reply, &delayed);
            if added.len() == batch.len() {
                return added.into_iter().map(Ok).collect();
            }
            JqError::Redis(format!(
                "add_jobs answered {} of {} jobs",
                added.len(),
                batch.len()
            ))
        }
        // Each caller's own job was written but not confirmed by enough replicas.
        Ok((_, Some(confirmed))) => core.not_replicated(confirmed, "1 job(s)"),
        Err(error) => error,
    };
    vec![Err(error); batch.len()]
}
