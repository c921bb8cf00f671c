//! The workers registry: each worker's heartbeat carries a small JSON description of it
//! (host, pid, concurrency, running jobs, counts, ...), written by the lock-renew call it
//! already makes every renew period (`extend_locks.lua`), so the registry costs nothing
//! per job. `NativeRegistry` reads the live workers back (`get_workers.lua`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

use crate::queue::{NativeQueue, QueueCore};
use crate::runtime::into_awaitable;
use crate::scripts;

/// What a worker counts for its heartbeat: attempts finished and attempts failed.
#[derive(Default)]
pub struct WorkerCounts {
    processed: AtomicU64,
    failed: AtomicU64,
}

impl WorkerCounts {
    /// Count a written outcome ("completed", "retrying", "failed", "dlq"; "lost" is not).
    pub fn count(&self, outcome: &str) {
        if outcome == "lost" {
            return;
        }
        self.processed.fetch_add(1, Ordering::Relaxed);
        if outcome != "completed" {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The heartbeat's description: the worker's fixed fields (a JSON object's text from
    /// Python, or empty for none) with the running jobs and the counts added.
    pub fn describe(&self, fixed: &str, running: usize) -> String {
        let Some(open) = fixed.trim_end().strip_suffix('}') else {
            return String::new();
        };
        let comma = if open.trim_end().ends_with('{') {
            ""
        } else {
            ","
        };
        format!(
            "{open}{comma}\"running\":{running},\"processed\":{},\"failed\":{}}}",
            self.processed.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed)
        )
    }
}

#[pyclass(frozen, module = "jobqueue._native")]
pub struct NativeRegistry {
    core: Arc<QueueCore>,
}

#[pymethods]
impl NativeRegistry {
    #[new]
    fn new(queue: &NativeQueue) -> Self {
        Self {
            core: queue.core.clone(),
        }
    }

    /// Resolves to `(server time ms, [(worker id, heartbeat deadline ms, description JSON
    /// or None), ...])` for the workers whose heartbeat has not lapsed.
    #[allow(clippy::type_complexity)]
    fn workers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        into_awaitable(py, async move {
            let invocation = scripts::invocation(&scripts::GET_WORKERS, &core.keys);
            let (now, rows): (i64, Vec<(String, i64, Option<String>)>) =
                core.conn.invoke(&invocation).await?;
            Ok((now, rows))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_adds_the_live_fields_to_the_fixed_ones() {
        let counts = WorkerCounts::default();
        counts.count("completed");
        counts.count("retrying");
        counts.count("lost");
        assert_eq!(
            counts.describe(r#"{"host":"h"}"#, 3),
            r#"{"host":"h","running":3,"processed":2,"failed":1}"#
        );
        assert_eq!(
            counts.describe("{}", 0),
            r#"{"running":0,"processed":2,"failed":1}"#
        );
        assert_eq!(counts.describe("", 0), "");
    }
}
