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
