//! The process-wide Tokio runtime and its bridge to asyncio.
//!
//! The runtime is created lazily on first use and re-created in a child process after
//! `fork()`: a forked child inherits the runtime's memory but none of its threads, so the
//! inherited runtime would accept tasks and never run them.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};

use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{self, ContextExt, Runtime as GenericRuntime};
use pyo3_async_runtimes::TaskLocals;
use tokio::runtime::{Builder, Handle, Runtime};

struct OwnedRuntime {
    pid: u32,
    runtime: Arc<Runtime>,
}

static RUNTIME: Mutex<Option<OwnedRuntime>> = Mutex::new(None);

/// This process's id, cached: `getpid` is a real system call, and the fork checks ask for
/// it on every request (it showed up as 15% of a busy worker's samples). A child of
/// `fork()` clears the cache through the `pthread_atfork` handler registered on first use.
static PID: AtomicU32 = AtomicU32::new(0);
static AT_FORK: Once = Once::new();

extern "C" fn forget_pid_in_child() {
    PID.store(0, Ordering::Relaxed);
}

/// The id of the current process (see [`PID`]).
pub fn current_pid() -> u32 {
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which is
        // async-signal-safe as the child side of fork requires.
        unsafe {
            libc::pthread_atfork(None, None, Some(forget_pid_in_child));
        }
    });
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// Worker threads of the runtime (`JOBQUEUE_RUNTIME_THREADS`, default 1): Redis I/O is
/// light, and every extra thread competes with the Python interpreter for a core and adds
/// cross-thread wake-ups (measured: one thread is ~8% faster for both single adds and
/// draining on a 2-core machine).
fn worker_threads() -> usize {
    std::env::var("JOBQUEUE_RUNTIME_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

fn build_runtime() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .thread_name("jobqueue-rt")
        .enable_all()
        .build()
        .expect("jobqueue: cannot start the Tokio runtime")
}

/// The handle of this process's runtime, creating it (again, after a fork) when needed.
pub fn handle() -> Handle {
    let pid = current_pid();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    match slot.as_ref() {
        Some(owned) if owned.pid == pid => owned.runtime.handle().clone(),
        _ => {
            if let Some(stale) = slot.take() {
                // The parent's runtime: its threads do not exist here, and dropping it would
                // wait for them forever. Leak it instead.
                std::mem::forget(stale.runtime);
            }
            let runtime = Arc::new(build_runtime());
            let handle = runtime.handle().clone();
            *slot = Some(OwnedRuntime { pid, runtime });
            handle
        }
    }
}

/// Stop the runtime, waiting up to `timeout` for its threads to finish what they run.
///
/// Called at interpreter exit (Python's `atexit`, before finalization): a runtime thread
/// still handing a result to asyncio when the interpreter finalizes would be killed halfway
/// through a Python call and crash the process. The caller must not hold the GIL, so that
/// such a thread can finish its call.
pub fn shutdown(timeout: std::time::Duration) {
    let owned = RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(owned) = owned {
        if owned.pid != current_pid() {
            std::mem::forget(owned.runtime);
        } else if let Ok(runtime) = Arc::try_unwrap(owned.runtime) {
            runtime.shutdown_timeout(timeout);
        }
    }
}

/// Run a future to completion on the runtime from a thread outside it (Rust tests, CLI).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let handle = handle();
    handle.block_on(fut)
}

/// The marker type through which pyo3-async-runtimes spawns onto our fork-safe runtime.
pub struct JobQueueRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for JobQueueRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        handle().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        handle().spawn_blocking(f)
    }
}

impl ContextExt for JobQueueRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// Turn a Rust future into an asyncio awaitable. The future runs on the Tokio runtime
/// without the GIL; only the final conversion of its output takes it.
pub fn into_awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    generic::future_into_py::<JobQueueRuntime, F, T>(py, fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, so that no other test's shutdown races the assertions about the handle.
    #[test]
    fn runtime_is_reused_then_recreated_after_shutdown() {
        let a = handle();
        let b = handle();
        assert_eq!(a.id(), b.id());
        assert_eq!(block_on(async { 40 + 2 }), 42);
        shutdown(std::time::Duration::from_secs(1));
        let after = handle();
        assert_ne!(a.id(), after.id());
        assert_eq!(block_on(async { 1 }), 1);
    }
}
