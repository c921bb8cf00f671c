//! `jobqueue._native`: the Rust core of the jobqueue Python package.

pub mod connection;
pub mod errors;
pub mod json;
pub mod keys;
pub mod queue;
pub mod runtime;
pub mod scripts;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<queue::NativeQueue>()?;
    m.add("LAYOUT_VERSION", keys::LAYOUT_VERSION)?;
    Ok(())
}
