//! The Redis settings that decide whether Redis itself may drop jobs.
//!
//! A queue's main connection reads `maxmemory-policy` once per new connection, before the
//! connection serves its first request (so requests pay nothing for it), and hands the
//! reading to a Python hook (`jobqueue.redis_safety`) that judges it, reports it and may
//! refuse the server. `redis_settings` reads everything a health check judges. This module
//! only reads: what a reading means, and its wording, are decided in Python.

use std::collections::HashMap;

use crate::cluster::Conn;
use pyo3::prelude::*;
use pyo3_async_runtimes::generic::ContextExt;

use crate::errors::{is_connection_error, JqError};
use crate::queue::NativeQueue;
use crate::runtime::{into_awaitable, JobQueueRuntime};

/// What the server told of its `maxmemory-policy`.
pub struct PolicyReading {
    /// None when neither `CONFIG GET` nor `INFO` told it.
    pub policy: Option<String>,
    /// Where the policy came from: "CONFIG GET", "INFO memory", or "" when unknown.
    pub source: &'static str,
    /// Why `CONFIG GET` (and `INFO`, when it failed too) did not answer; "" when it did.
    pub problem: String,
}

/// A failed read: Err when the connection broke (the caller gives up), else the server's
/// refusal as text (managed Redis often disables or renames `CONFIG`; an ACL may forbid it).
fn refusal(err: redis::RedisError) -> Result<String, JqError> {
    if is_connection_error(&err) {
        Err(JqError::from(err))
    } else {
        Ok(err.to_string())
    }
}

/// `CONFIG GET name`: the value, or None when the server has no such setting.
async fn config_get(conn: &mut Conn, name: &str) -> redis::RedisResult<Option<String>> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(pair.into_iter().nth(1))
}

/// The fields of one `INFO` section.
async fn info(conn: &mut Conn, section: &str) -> redis::RedisResult<HashMap<String, String>> {
    let text: String = redis::cmd("INFO").arg(section).query_async(conn).await?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(field, value)| (field.to_string(), value.trim().to_string()))
        .collect())
}

/// `CONFIG GET name`, None when the server refuses to tell.
async fn config_or_none(conn: &mut Conn, name: &str) -> Result<Option<String>, JqError> {
    config_get(conn, name)
        .await
        .or_else(|err| refusal(err).map(|_| None))
}

/// An `INFO` section, empty when the server refuses to tell.
async fn info_or_empty(conn: &mut Conn, section: &str) -> Result<HashMap<String, String>, JqError> {
    info(conn, section)
        .await
        .or_else(|err| refusal(err).map(|_| HashMap::new()))
}

/// The eviction policy: by `CONFIG GET`, else from `INFO memory`.
pub async fn read_policy(conn: &mut Conn) -> Result<PolicyReading, JqError> {
    let config_problem = match config_get(conn, "maxmemory-policy").await {
        Ok(Some(policy)) => {
            return Ok(PolicyReading {
                policy: Some(policy),
                source: "CONFIG GET",
                problem: String::new(),
            })
        }
        Ok(None) => "CONFIG GET maxmemory-policy answered nothing".to_string(),
        Err(err) => format!("CONFIG GET refused: {}", refusal(err)?),
    };
    let info_problem = match info(conn, "memory").await {
        Ok(fields) => match fields.get("maxmemory_policy") {
            Some(policy) => {
                return Ok(PolicyReading {
                    policy: Some(policy.clone()),
                    source: "INFO memory",
                    problem: config_problem,
                })
            }
            None => "INFO memory has no maxmemory_policy".to_string(),
        },
        Err(err) => format!("INFO refused: {}", refusal(err)?),
    };
    Ok(PolicyReading {
        policy: None,
        source: "",
        problem: format!("{config_problem}; {info_problem}"),
    })
}

/// The check a queue's main connection runs on each new connection (see the module doc).
pub struct SettingsCheck {
    /// `hook(policy, source, problem, event_loop) -> refusal message or None`.
    hook: Py<PyAny>,
}

impl SettingsCheck {
    pub fn new(hook: Py<PyAny>) -> Self {
        Self { hook }
    }

    /// Read the policy and let the hook judge it. Err refuses the connection: the
    /// connection broke, or the server is unsafe and the queue refuses such servers.
    pub async fn on_connect(&self, conn: &mut Conn) -> Result<(), JqError> {
        let reading = read_policy(conn).await?;
        let refused = Python::attach(|py| -> PyResult<Option<String>> {
            // The event loop of the call that is connecting (none in the worker's own
            // tasks), on which the hook reports to the queue's handlers.
            let event_loop = JobQueueRuntime::get_task_locals()
                .map(|locals| locals.event_loop(py).clone().unbind());
            let args = (reading.policy, reading.source, reading.problem, event_loop);
            self.hook.call1(py, args)?.extract(py)
        })
        .map_err(|e| JqError::Redis(format!("the check of the Redis settings failed: {e}")))?;
        match refused {
            Some(message) => Err(JqError::UnsafeRedis(message)),
            None => Ok(()),
        }
    }
}

/// Everything a health check judges: (maxmemory-policy or None, where it came from, why it
/// could not be read, maxmemory bytes, used memory bytes, `save`, `appendonly`); a
/// setting the server would not tell is None.
type SettingsReading = (
    Option<String>,
    &'static str,
    String,
    Option<u64>,
    Option<u64>,
    Option<String>,
    Option<String>,
);

async fn read_settings(conn: &mut Conn) -> Result<SettingsReading, JqError> {
    let policy = read_policy(conn).await?;
    let memory = info_or_empty(conn, "memory").await?;
    let bytes = |field: &str| memory.get(field).and_then(|v| v.parse().ok());
    let save = config_or_none(conn, "save").await?;
    let appendonly = match config_or_none(conn, "appendonly").await? {
        Some(value) => Some(value),
        None => info_or_empty(conn, "persistence")
            .await?
            .get("aof_enabled")
            .map(|on| if on == "1" { "yes" } else { "no" }.to_string()),
    };
    Ok((
        policy.policy,
        policy.source,
        policy.problem,
        bytes("maxmemory"),
        bytes("used_memory"),
        save,
        appendonly,
    ))
}

/// Resolves to the queue's server's settings reading (see [`SettingsReading`]).
#[pyfunction]
pub fn redis_settings<'py>(py: Python<'py>, queue: &NativeQueue) -> PyResult<Bound<'py, PyAny>> {
    let core = queue.core.clone();
    into_awaitable(py, async move {
        let mut conn = core.conn.get().await?;
        let reading = read_settings(&mut conn).await;
        if let Err(JqError::Connection(_)) = reading {
            core.conn.close(); // it broke: the next call connects anew
        }
        Ok(reading?)
    })
}
