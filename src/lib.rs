//! `jobqueue._native`: the Rust core of the jobqueue Python package.

pub mod ack_args;
pub mod backoff;
mod blocking_add;
pub mod cluster;
pub mod connection;
pub mod errors;
pub mod flows;
pub mod groups;
mod handover;
pub mod json;
pub mod keys;
mod layout_upgrade;
pub mod loop_conn;
pub mod partitions;
pub mod queue;
mod queue_index;
pub mod record;
pub mod redis_settings;
pub mod registry;
pub mod runtime;
pub mod scripts;
pub mod sentinel;
#[doc(hidden)]
pub mod test_redis;
mod wake;
pub mod worker;

use pyo3::prelude::*;

/// Stop the Tokio runtime (registered with `atexit` by the Python package).
#[pyfunction]
fn shutdown_runtime(py: Python<'_>) {
    py.detach(|| runtime::shutdown(std::time::Duration::from_secs(2)));
}

/// This process's id, cached across `fork()` (see `runtime::current_pid`): the producer's
/// fork check runs on every add, and `os.getpid()` is a system call.
#[pyfunction]
fn current_pid() -> u32 {
    runtime::current_pid()
}

/// Strict JSON text of a Python value (the serializer `add_job` uses), for callers that
/// need a value's canonical JSON before sending it (e.g. schedule ids).
#[pyfunction]
fn to_json(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    let bytes = json::to_json(value, name)?;
    Ok(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<queue::NativeQueue>()?;
    m.add_class::<worker::NativeWorker>()?;
    m.add_class::<groups::NativeGroups>()?;
    m.add_class::<flows::NativeFlows>()?;
    m.add_class::<registry::NativeRegistry>()?;
    m.add_class::<loop_conn::LoopChannel>()?;
    m.add_function(wrap_pyfunction!(shutdown_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(to_json, m)?)?;
    m.add_function(wrap_pyfunction!(current_pid, m)?)?;
    m.add_function(wrap_pyfunction!(redis_settings::redis_settings, m)?)?;
    m.add_function(wrap_pyfunction!(partitions::partition_count, m)?)?;
    m.add_function(wrap_pyfunction!(partitions::wake_partitions, m)?)?;
    m.add_function(wrap_pyfunction!(queue_index::index_queue, m)?)?;
    m.add_function(wrap_pyfunction!(queue_index::indexed_queues, m)?)?;
    m.add("LAYOUT_VERSION", keys::LAYOUT_VERSION)?;
    // The release version has one home, Cargo.toml: maturin gives it to the wheel's metadata
    // (pyproject.toml's version is dynamic) and the module gives it to `jobqueue.__version__`.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
