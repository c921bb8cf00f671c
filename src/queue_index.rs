//! The index of queue names (docs/redis-layout.md, "The queue index"): a set `P:queues`
//! that lists every queue of prefix `P` once, so that a dashboard or an admin tool finds
//! the queues of a Redis without `KEYS` or `SCAN`. A queue adds its name when it is first
//! used in a process (its first add, schedule or worker start): one `SADD` per `JobQueue`,
//! none per job. The key has no hash tag: on a Redis Cluster it lives in a slot of its
//! own, and these plain commands are routed to it by the connection.

use pyo3::prelude::*;

use crate::queue::NativeQueue;
use crate::runtime::into_awaitable;

/// Adds `name` to the index set `key`; resolves to True when it was not listed yet.
#[pyfunction]
pub fn index_queue<'py>(
    py: Python<'py>,
    queue: &NativeQueue,
    key: String,
    name: String,
) -> PyResult<Bound<'py, PyAny>> {
    let core = queue.core.clone();
    into_awaitable(py, async move {
        let added: i64 = core
            .conn
            .query(redis::cmd("SADD").arg(&key).arg(&name))
            .await?;
        Ok(added == 1)
    })
}

/// Resolves to the names in the index set `key`, sorted.
#[pyfunction]
pub fn indexed_queues<'py>(
    py: Python<'py>,
    queue: &NativeQueue,
    key: String,
) -> PyResult<Bound<'py, PyAny>> {
    let core = queue.core.clone();
    into_awaitable(py, async move {
        let mut names: Vec<String> = core.conn.query(redis::cmd("SMEMBERS").arg(&key)).await?;
        names.sort();
        Ok(names)
    })
}
