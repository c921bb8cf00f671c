//! The stored partition count of a partitioned queue (docs/redis-layout.md, "Partitions").
//!
//! A queue of N > 1 partitions records N in the meta hash of its partition 0 (the keys an
//! unpartitioned queue of the same name uses), so that every process of the queue agrees
//! on N. Everything else about partitions is routing, done in Python
//! (`jobqueue/partitions.py`): each partition is a queue of its own hash tag, and every
//! script still runs in one slot.

use pyo3::prelude::*;

use crate::queue::NativeQueue;
use crate::runtime::into_awaitable;

/// Claims or reads the count in one atomic step. A meta hash without the field but with a
/// layout version is a queue used unpartitioned (`1`): it is not claimed, so turning a
/// live queue into a partitioned one is refused rather than leaving its running processes
/// serving partition 0 alone. A count of 1 is never written (an unpartitioned queue pays
/// nothing and its meta hash stays as it was).
const CLAIM: &str = r"
local stored = redis.call('HGET', KEYS[1], 'partitions')
if stored then return stored end
if ARGV[1] == '1' or redis.call('EXISTS', KEYS[1]) == 1 then return '1' end
redis.call('HSET', KEYS[1], 'partitions', ARGV[1])
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
            .arg(1)
            .arg(&core.keys.meta)
            .arg(requested.to_string());
        let stored: String = core.conn.query(&cmd).await?;
        Ok(stored.parse::<u32>().unwrap_or(0))
    })
}
