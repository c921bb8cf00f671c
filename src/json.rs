//! Strict conversion of Python values to JSON text.
//!
//! Only dict (with str keys), list, str, int (64-bit), finite float, bool and None are
//! JSON; everything else (sets, tuples, bytes, datetimes, objects, NaN, infinities) is
//! refused with the path of the offending value, before anything reaches Redis.

use std::io::Write;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::errors::JqError;

/// Deeper nesting than this is refused (and so are reference cycles).
const MAX_DEPTH: usize = 200;

/// Serialize `value` to JSON; `root` names the value in errors (e.g. `data of job 'x'`).
pub fn to_json(value: &Bound<'_, PyAny>, root: &str) -> Result<Vec<u8>, JqError> {
    to_json_named(value, || root.to_string())
}

/// As [`to_json`], naming the value only when there is an error (a batch of jobs would
/// otherwise format a name for every job).
pub fn to_json_named(
    value: &Bound<'_, PyAny>,
    root: impl FnOnce() -> String,
) -> Result<Vec<u8>, JqError> {
    let mut out = Vec::with_capacity(128);
    let mut path = Vec::new();
    write_value(value, &mut out, &mut path).map_err(|why| {
        JqError::Serialization(format!("{}{}: {why}", root(), render_path(&path)))
    })?;
    Ok(out)
}

enum Segment {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Segment]) -> String {
    path.iter()
        .map(|s| match s {
            Segment::Key(k) => format!("[{k:?}]"),
            Segment::Index(i) => format!("[{i}]"),
        })
        .collect()
}

fn write_value(
    value: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
    path: &mut Vec<Segment>,
) -> Result<(), String> {
    if path.len() > MAX_DEPTH {
        return Err(format!(
            "nested deeper than {MAX_DEPTH} levels (or a reference cycle)"
        ));
    }
    if value.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(s) = value.cast::<PyString>() {
        write_str(s.to_str().map_err(|e| e.to_string())?, out);
    } else if let Ok(b) = value.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if value.cast::<PyInt>().is_ok() {
        if let Ok(i) = value.extract::<i64>() {
            let _ = write!(out, "{i}");
        } else if let Ok(u) = value.extract::<u64>() {
            let _ = write!(out, "{u}");
        } else {
            return Err("integer does not fit in 64 bits".to_string());
        }
    } else if let Ok(f) = value.cast::<PyFloat>() {
        let f = f.value();
        if !f.is_finite() {
            return Err(format!(
                "{f} is not a JSON number (NaN and infinities are not JSON)"
            ));
        }
        let n = serde_json::Number::from_f64(f).ok_or("float is not a JSON number")?;
        let _ = write!(out, "{n}");
    } else if let Ok(list) = value.cast::<PyList>() {
        out.push(b'[');
        for (i, item) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            path.push(Segment::Index(i));
            write_value(&item, out, path)?;
            path.pop();
        }
        out.push(b']');
    } else if let Ok(dict) = value.cast::<PyDict>() {
        out.push(b'{');
        for (i, (key, item)) in dict.iter().enumerate() {
            let Ok(key) = key.cast::<PyString>() else {
                let type_name = type_name(&key);
                return Err(format!(
                    "dict keys must be str, got a key of type {type_name}"
                ));
            };
            let key = key.to_str().map_err(|e| e.to_string())?;
            if i > 0 {
                out.push(b',');
            }
            write_str(key, out);
            out.push(b':');
            path.push(Segment::Key(key.to_string()));
            write_value(&item, out, path)?;
            path.pop();
        }
        out.push(b'}');
    } else {
        return Err(format!(
            "{} is not JSON (allowed: dict, list, str, int, float, bool, None)",
            type_name(value)
        ));
    }
    Ok(())
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string())
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json writes the escaped string; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_str("a\"b\n\u{1}", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\\"b\\n\\u0001\"");
    }

    #[test]
    fn paths_render_like_python_subscripts() {
        let path = vec![Segment::Key("items".into()), Segment::Index(3)];
        assert_eq!(render_path(&path), "[\"items\"][3]");
    }
}
