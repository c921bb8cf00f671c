//! Hand-over of fetched jobs to the processors, with adaptive prefetch.
//!
//! A worker runs at most `concurrency` jobs at once. While its jobs are short it also
//! fetches up to `prefetch` more and keeps them here, so that a finished job's slot is
//! refilled from memory at once instead of after the next fetch's round trip to Redis
//! (the drain benchmark at concurrency 50 was bound by that round trip: 33k jobs/s, and
//! 42k with the slots kept full). Kept jobs hold their locks (the renew loop renews them)
//! and are handed over in fetch order as slots free.
//!
//! A kept job must never wait behind a slow one while another worker idles (the Celery
//! prefetch problem). Three rules see to it:
//! - prefetch is on only while the moving average of run times is under `SHORT_JOB`;
//! - a worker keeps at most as many jobs as it runs young ones (running for less than
//!   `KEEP_BOUND`): a job that has run that long says nothing about when it will end;
//! - a job kept for `KEEP_BOUND` is taken back out ([`Handover::take_overdue`]) and the
//!   worker returns it to the head of the queue for any worker to take.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Jobs whose average run is under this may be prefetched: a kept job then waits at most
/// about this long for a slot, and the refill saves a round trip of a similar order.
pub const SHORT_JOB: Duration = Duration::from_millis(10);
/// Longest a fetched job is kept waiting for a slot before it goes back to the queue; the
/// same age makes a running job too old to count on for a slot. It bounds how long a
/// job's status can read active while no processor runs it.
pub const KEEP_BOUND: Duration = Duration::from_millis(20);
/// Weight of the newest run in the moving average.
const AVERAGE_WEIGHT: f64 = 1.0 / 16.0;

struct State<T> {
    /// Fetched jobs waiting for a slot, in fetch order, with when they were kept.
    kept: VecDeque<(String, T, Instant)>,
    /// Delivered jobs that have not finished, with when they were delivered.
    running: HashMap<String, Instant>,
    /// Moving average of run times in seconds; None until a job has finished.
    average_run: Option<f64>,
    /// The fetch loop ended while jobs were kept: its end is reported after the last.
    end_pending: bool,
}

pub struct Handover<T> {
    state: Mutex<State<T>>,
    concurrency: usize,
    prefetch: usize,
    freed: Notify,
    /// Signalled when a job is kept while none was: the keeper of `KEEP_BOUND` wakes.
    kept_first: Notify,
}

impl<T> Handover<T> {
    pub fn new(concurrency: usize, prefetch: usize) -> Self {
        Self {
            state: Mutex::new(State {
                kept: VecDeque::new(),
                running: HashMap::new(),
                average_run: None,
                end_pending: false,
            }),
            concurrency,
            prefetch,
            freed: Notify::new(),
            kept_first: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many more jobs the fetch loop may take now.
    pub fn room(&self) -> usize {
        let state = self.state();
        let short = matches!(state.average_run, Some(s) if s < SHORT_JOB.as_secs_f64());
        let prefetch = if short {
            // Only a young running job is likely to free its slot within the bound.
            let young = state
                .running
                .values()
                .filter(|started| started.elapsed() < KEEP_BOUND)
                .count();
            self.prefetch.min(young)
        } else {
            0
        };
        (self.concurrency + prefetch).saturating_sub(state.running.len() + state.kept.len())
    }

    /// Jobs delivered to processors and not finished yet.
    pub fn running(&self) -> usize {
        self.state().running.len()
    }

    /// Wait until a running job finishes (a later call returns at once if one finished
    /// since the last wait).
    pub async fn wait_freed(&self) {
        self.freed.notified().await;
    }

    /// A fetched job: delivered now when a slot is free, kept otherwise. `deliver` runs
    /// under the hand-over's lock, so deliveries keep the order decided here.
    pub fn offer(&self, id: String, job: T, deliver: impl Fn(T)) {
        let mut state = self.state();
        if state.running.len() < self.concurrency && state.kept.is_empty() {
            state.running.insert(id, Instant::now());
            deliver(job);
        } else {
            if state.kept.is_empty() {
                self.kept_first.notify_one();
            }
            state.kept.push_back((id, job, Instant::now()));
        }
    }

    /// When the oldest kept job reaches `KEEP_BOUND`, or None when none is kept.
    pub fn next_overdue(&self) -> Option<Instant> {
        self.state()
            .kept
            .front()
            .map(|(_, _, kept_at)| *kept_at + KEEP_BOUND)
    }

    /// Wait until a job is kept while none was (returns at once if that happened since
    /// the last wait).
    pub async fn wait_kept(&self) {
        self.kept_first.notified().await;
    }

    /// Take out the jobs kept for `KEEP_BOUND` or longer (they will not be delivered), in
    /// fetch order; reports the end of fetching (`end`) if that empties a pending end.
    pub fn take_overdue(&self, end: impl FnOnce()) -> Vec<(String, T)> {
        let mut state = self.state();
        let mut overdue = Vec::new();
        while let Some((_, _, kept_at)) = state.kept.front() {
            if kept_at.elapsed() < KEEP_BOUND {
                break;
            }
            let (id, job, _) = state.kept.pop_front().expect("a front job");
            overdue.push((id, job));
        }
        if !overdue.is_empty() && state.end_pending && state.kept.is_empty() {
            state.end_pending = false;
            end();
        }
        overdue
    }

    /// A delivered job finished: frees its slot for the first kept job, and reports the
    /// end of fetching (`end`) once the last kept job is out. Unknown ids are ignored.
    pub fn finish(&self, id: &str, deliver: impl Fn(T), end: impl FnOnce()) {
        let mut state = self.state();
        let Some(started) = state.running.remove(id) else {
            return;
        };
        let took = started.elapsed().as_secs_f64();
        state.average_run = Some(match state.average_run {
            Some(average) => average + (took - average) * AVERAGE_WEIGHT,
            None => took,
        });
        if state.running.len() < self.concurrency {
            if let Some((next, job, _)) = state.kept.pop_front() {
                state.running.insert(next, Instant::now());
                deliver(job);
            }
        }
        if state.end_pending && state.kept.is_empty() {
            state.end_pending = false;
            end();
        }
        drop(state);
        self.freed.notify_one();
    }

    /// The fetch loop ended: `end` runs now, or after the last kept job is delivered.
    pub fn fetch_ended(&self, end: impl FnOnce()) {
        let mut state = self.state();
        if state.kept.is_empty() {
            end();
        } else {
            state.end_pending = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    #[test]
    fn keeps_jobs_beyond_concurrency_and_hands_them_over_in_order() {
        let handover = Handover::new(2, 2);
        let delivered = RefCell::new(Vec::new());
        for id in ids(4) {
            handover.offer(id.clone(), id, |j| delivered.borrow_mut().push(j));
        }
        assert_eq!(*delivered.borrow(), ["0", "1"]);
        handover.finish(
            "1",
            |j| delivered.borrow_mut().push(j),
            || panic!("not ended"),
        );
        handover.finish(
            "0",
            |j| delivered.borrow_mut().push(j),
            || panic!("not ended"),
        );
        assert_eq!(*delivered.borrow(), ["0", "1", "2", "3"]);
    }

    #[test]
    fn prefetches_only_once_jobs_are_known_to_be_short() {
        let handover = Handover::new(2, 3);
        assert_eq!(handover.room(), 2, "unknown run times: no prefetch");
        handover.offer("a".into(), (), |_| {});
        assert_eq!(handover.room(), 1);
        handover.finish("a", |_| {}, || {});
        handover.offer("b".into(), (), |_| {});
        handover.offer("c".into(), (), |_| {});
        assert_eq!(handover.room(), 2, "a short job was seen: prefetch");
        // A long job pulls the average over the bound.
        let long = Handover::new(2, 3);
        long.offer("a".into(), (), |_| {});
        long.state()
            .running
            .insert("a".into(), Instant::now() - SHORT_JOB * 4);
        long.finish("a", |_| {}, || {});
        assert_eq!(long.room(), 2);
    }

    #[test]
    fn the_end_of_fetching_follows_the_last_kept_job() {
        let handover = Handover::new(1, 1);
        let log = RefCell::new(Vec::new());
        handover.offer("a".into(), "a", |j| log.borrow_mut().push(j));
        handover.offer("b".into(), "b", |j| log.borrow_mut().push(j));
        handover.fetch_ended(|| log.borrow_mut().push("end"));
        assert_eq!(*log.borrow(), ["a"], "b is still kept");
        handover.finish(
            "a",
            |j| log.borrow_mut().push(j),
            || log.borrow_mut().push("end"),
        );
        assert_eq!(*log.borrow(), ["a", "b", "end"]);
        // With nothing kept the end is reported at once.
        let empty: Handover<()> = Handover::new(1, 1);
        let ended = RefCell::new(false);
        empty.fetch_ended(|| *ended.borrow_mut() = true);
        assert!(*ended.borrow());
    }

    #[test]
    fn finishing_an_unknown_job_changes_nothing() {
        let handover = Handover::new(1, 1);
        handover.offer("a".into(), (), |_| {});
        handover.finish("zzz", |_| panic!("no delivery"), || panic!("no end"));
        assert_eq!(handover.room(), 0);
    }

    #[test]
    fn jobs_kept_past_the_bound_are_taken_out_in_order() {
        let handover = Handover::new(1, 2);
        handover.offer("run".into(), "run", |_| {});
        handover.offer("a".into(), "a", |_| panic!("kept"));
        handover.offer("b".into(), "b", |_| panic!("kept"));
        assert!(
            handover.take_overdue(|| panic!("no end")).is_empty(),
            "not yet due"
        );
        let due = handover.next_overdue().expect("jobs are kept");
        assert!(due > Instant::now() && due <= Instant::now() + KEEP_BOUND);
        for (_, _, kept_at) in handover.state().kept.iter_mut() {
            *kept_at -= KEEP_BOUND;
        }
        let ended = RefCell::new(false);
        handover.fetch_ended(|| *ended.borrow_mut() = true);
        let taken: Vec<_> = handover
            .take_overdue(|| *ended.borrow_mut() = true)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(taken, ["a", "b"]);
        assert!(*ended.borrow(), "the end waited for the kept jobs only");
        assert_eq!(handover.next_overdue(), None);
        // A finished slot finds nothing kept any more.
        handover.finish("run", |_| panic!("nothing to deliver"), || {});
    }

    #[test]
    fn only_young_running_jobs_make_room_for_prefetch() {
        let handover = Handover::new(2, 2);
        handover.offer("warm".into(), (), |_| {});
        handover.finish("warm", |_| {}, || {}); // short jobs: prefetch is on
        assert_eq!(
            handover.room(),
            2,
            "nothing runs: no job to keep one behind"
        );
        handover.offer("a".into(), (), |_| {});
        handover.offer("b".into(), (), |_| {});
        assert_eq!(handover.room(), 2, "two young jobs: two may be kept");
        handover
            .state()
            .running
            .insert("a".into(), Instant::now() - KEEP_BOUND);
        assert_eq!(handover.room(), 1, "one job is old: it may end at any time");
        handover
            .state()
            .running
            .insert("b".into(), Instant::now() - KEEP_BOUND);
        assert_eq!(handover.room(), 0);
    }
}
