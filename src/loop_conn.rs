//! Producer requests on a connection whose socket the asyncio event loop drives.
//!
//! An awaited `add_job` on the native connection crosses threads four times (event loop →
//! Tokio → Redis → Tokio → event loop). Each crossing is a wake-up of tens of µs on a small
//! machine, which made a single add take ~190 µs of round trip where `redis-benchmark`
//! needs ~60. Here the loop's own transport (`jobqueue.loop_connection`) writes requests and
//! reads replies, and the rest stays in Rust: requests are packed here, and replies are
//! framed, parsed by redis-rs and turned into results here, once per chunk read.
//!
//! Requests are pipelined: replies arrive in request order and settle a FIFO of asyncio
//! futures. The channel carries `add_jobs` only; Python falls back to the native
//! connection (with its connect retries) whenever this one is not open.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use redis::{ConnectionAddr, FromRedisValue, Value};

use crate::errors::{is_connection_error, JqError};
use crate::queue::{added_jobs, AddJobsReply, NewJob, QueueCore};
use crate::scripts;

/// Where to connect: ("tcp", host, port) or ("unix", path, 0), and the connect and
/// command timeouts in ms (None: no command timeout).
pub type Endpoint = (String, String, u16, u64, Option<u64>);

enum Kind {
    /// A command of the handshake (AUTH, SELECT, PING); the last one holds the future.
    Handshake,
    /// SCRIPT LOAD sent after a NOSCRIPT; the resent request that follows reports errors.
    ScriptLoad,
    AddJobs {
        request: Vec<u8>,
        delayed: Vec<bool>,
        resent: bool,
    },
}

struct Pending {
    future: Option<Py<PyAny>>,
    kind: Kind,
}

#[derive(Default)]
struct State {
    buffer: Vec<u8>,
    pending: VecDeque<Pending>,
}

/// How a reply settles its future, applied once the channel's lock is released.
enum Settle {
    Value(Py<PyAny>, Py<PyAny>),
    Error(Py<PyAny>, PyErr),
}

#[pyclass(frozen, module = "jobqueue._native")]
pub struct LoopChannel {
    core: Arc<QueueCore>,
    state: Mutex<State>,
}

impl LoopChannel {
    /// A channel for `core`'s server, or None when its connection needs TLS or its adds
    /// WAIT for replicas (both stay on the native connection). With Sentinel, the server
    /// is the primary the native connection found; while it has none this raises
    /// `ConnectionError` and the caller keeps to the native connection for now.
    pub(crate) fn for_queue(core: &Arc<QueueCore>) -> PyResult<Option<(Endpoint, LoopChannel)>> {
        let conn = &core.conn;
        if conn.uses_tls() || core.durability.is_some() {
            return Ok(None);
        }
        let (connect_ms, command_ms) = conn.timeouts_ms();
        let Some(server) = conn.server() else {
            return Err(JqError::Connection("the primary is not known yet".into()).into());
        };
        let endpoint = match server {
            ConnectionAddr::Tcp(host, port) => ("tcp".into(), host, port),
            ConnectionAddr::Unix(path) => ("unix".into(), path.to_string_lossy().into(), 0),
            _ => return Ok(None),
        };
        let channel = LoopChannel {
            core: core.clone(),
            state: Mutex::new(State::default()),
        };
        Ok(Some((
            (endpoint.0, endpoint.1, endpoint.2, connect_ms, command_ms),
            channel,
        )))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turn one reply into how its request's future settles; a NOSCRIPT answer queues the
    /// script and the request again (written by the caller after the replies it reads).
    fn settle(
        &self,
        py: Python<'_>,
        pending: Pending,
        value: Value,
        requeue: &mut Vec<Pending>,
        resend: &mut Vec<u8>,
    ) -> Option<Settle> {
        let future = pending.future;
        match (pending.kind, value) {
            (Kind::ScriptLoad, _) => None,
            (Kind::Handshake, Value::ServerError(err)) => {
                let err = JqError::Connection(format!("Redis refused the handshake: {err}"));
                future.map(|f| Settle::Error(f, err.into()))
            }
            (Kind::Handshake, _) => future.map(|f| Settle::Value(f, py.None())),
            (
                Kind::AddJobs {
                    request,
                    delayed,
                    resent: false,
                },
                Value::ServerError(err),
            ) if err.code() == "NOSCRIPT" => {
                let mut load = redis::cmd("SCRIPT");
                load.arg("LOAD").arg(scripts::ADD_JOBS_SOURCE.as_str());
                load.write_packed_command(resend);
                resend.extend_from_slice(&request);
                requeue.push(Pending {
                    future: None,
                    kind: Kind::ScriptLoad,
                });
                requeue.push(Pending {
                    future,
                    kind: Kind::AddJobs {
                        request,
                        delayed,
                        resent: true,
                    },
                });
                None
            }
            (Kind::AddJobs { delayed, .. }, value) => {
                let future = future?;
                let outcome = match value {
                    Value::ServerError(err) => Err(JqError::from(redis::RedisError::from(err))),
                    value => AddJobsReply::from_redis_value(value)
                        .map_err(|e| JqError::Redis(format!("unexpected reply: {e}"))),
                };
                Some(match outcome {
                    Ok(reply) => match added_jobs(reply, &delayed).into_pyobject(py) {
                        Ok(result) => Settle::Value(future, result.unbind()),
                        Err(err) => Settle::Error(future, err),
                    },
                    Err(err) => Settle::Error(future, err.into()),
                })
            }
        }
    }
}

/// Set a future's outcome unless it is done already (its awaiter gave up).
fn apply(py: Python<'_>, settle: Settle) -> PyResult<()> {
    let (future, outcome) = match settle {
        Settle::Value(f, v) => (f, Ok(v)),
        Settle::Error(f, e) => (f, Err(e)),
    };
    let future = future.bind(py);
    // Interned names: this runs for every reply, and a plain &str is a new Python string
    // per call.
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match outcome {
        Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
        Err(err) => future.call_method1(intern!(py, "set_exception"), (err.into_value(py),))?,
    };
    Ok(())
}

#[pymethods]
impl LoopChannel {
    /// The handshake to write first (AUTH and SELECT as the URL asks, then PING); `future`
    /// resolves to None once the server accepted all of it.
    fn handshake<'py>(&self, py: Python<'py>, future: Py<PyAny>) -> Bound<'py, PyBytes> {
        let info = self.core.conn.info();
        let settings = info.redis_settings();
        let mut commands = Vec::new();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            commands.push(auth.arg(password).clone());
        }
        if settings.db() != 0 {
            commands.push(redis::cmd("SELECT").arg(settings.db()).clone());
        }
        commands.push(redis::cmd("PING"));
        let mut bytes = Vec::new();
        let mut state = self.state();
        let last = commands.len() - 1;
        for (i, command) in commands.iter().enumerate() {
            command.write_packed_command(&mut bytes);
            state.pending.push_back(Pending {
                future: (i == last).then(|| future.clone_ref(py)),
                kind: Kind::Handshake,
            });
        }
        PyBytes::new(py, &bytes)
    }

    /// Pack an add_jobs request for `future` and queue the future for its reply. Bad
    /// input raises here, before anything is written. Returns the bytes to write.
    fn add_jobs<'py>(
        &self,
        py: Python<'py>,
        jobs: Vec<NewJob<'py>>,
        future: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut cmd = scripts::evalsha(&scripts::ADD_JOBS, &self.core.keys);
        let delayed = self.core.add_jobs_args(&mut cmd, &jobs)?;
        let request = cmd.get_packed_command();
        let bytes = PyBytes::new(py, &request);
        self.state().pending.push_back(Pending {
            future: Some(future),
            kind: Kind::AddJobs {
                request,
                delayed,
                resent: false,
            },
        });
        Ok(bytes)
    }

    /// Take bytes read from the socket: settle the futures of every complete reply.
    /// Returns bytes to write (a request resent after NOSCRIPT), or None. Raises when the
    /// stream is not RESP or a reply has no request: the connection is then unusable.
    fn feed<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut settled = Vec::new();
        let mut resend = Vec::new();
        let broken = {
            let mut state = self.state();
            state.buffer.extend_from_slice(data);
            let mut requeue = Vec::new();
            let mut at = 0;
            let broken = loop {
                let end = match frame_end(&state.buffer, at) {
                    Ok(Some(end)) => end,
                    Ok(None) => break None,
                    Err(err) => break Some(err),
                };
                let value = match redis::parse_redis_value(&state.buffer[at..end]) {
                    Ok(value) => value,
                    Err(e) => break Some(JqError::Connection(format!("unreadable reply: {e}"))),
                };
                at = end;
                let Some(pending) = state.pending.pop_front() else {
                    break Some(JqError::Connection("a reply arrived for no request".into()));
                };
                // A failover reply (READONLY...): this server is no longer the primary.
                // The connection breaks so that the next one goes where the native
                // connection, which asks the sentinels, finds the primary.
                let failover = match &value {
                    Value::ServerError(e) => is_connection_error(&e.clone().into()),
                    _ => false,
                };
                settled.extend(self.settle(py, pending, value, &mut requeue, &mut resend));
                if failover {
                    break Some(JqError::Connection(
                        "Redis connection failed: the server is no longer the primary".into(),
                    ));
                }
            };
            state.buffer.drain(..at);
            state.pending.extend(requeue);
            broken
        };
        // Replies read before a broken one still settle their futures.
        for settle in settled {
            apply(py, settle)?;
        }
        if let Some(err) = broken {
            return Err(err.into());
        }
        Ok((!resend.is_empty()).then(|| PyBytes::new(py, &resend)))
    }

    /// The connection is gone: every waiting future gets `error`.
    fn fail_all(&self, py: Python<'_>, error: Bound<'_, PyAny>) -> PyResult<()> {
        let pending = {
            let mut state = self.state();
            state.buffer.clear();
            std::mem::take(&mut state.pending)
        };
        for future in pending.into_iter().filter_map(|p| p.future) {
            apply(py, Settle::Error(future, PyErr::from_value(error.clone())))?;
        }
        Ok(())
    }

    /// Requests written and not answered yet.
    #[getter]
    fn waiting(&self) -> usize {
        self.state().pending.len()
    }
}

/// The end of the RESP2 reply that starts at `at` in `buf`, or None while it is incomplete.
/// Only finds the boundaries; redis-rs parses the reply.
fn frame_end(buf: &[u8], at: usize) -> Result<Option<usize>, JqError> {
    let Some(offset) = buf[at.min(buf.len())..]
        .windows(2)
        .position(|w| w == b"\r\n")
    else {
        return Ok(None);
    };
    let line_end = at + offset;
    let next = line_end + 2;
    let length = || -> Result<i64, JqError> {
        std::str::from_utf8(&buf[at + 1..line_end])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| JqError::Connection("unreadable reply length".into()))
    };
    match buf[at] {
        b'+' | b'-' | b':' => Ok(Some(next)),
        b'$' => match length()? {
            n if n < 0 => Ok(Some(next)),
            n => {
                let end = next + n as usize + 2;
                Ok((end <= buf.len()).then_some(end))
            }
        },
        b'*' => {
            let mut position = next;
            for _ in 0..length()?.max(0) {
                match frame_end(buf, position)? {
                    Some(end) => position = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(position))
        }
        other => Err(JqError::Connection(format!(
            "unexpected reply type byte {other:#04x}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::frame_end;

    #[test]
    fn frames_complete_replies_only() {
        let reply = b"*4\r\n:17\r\n$7\r\nwaiting\r\n*1\r\n$1\r\n5\r\n*1\r\n:1\r\n";
        for cut in 0..reply.len() {
            assert_eq!(frame_end(&reply[..cut], 0).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(frame_end(reply, 0).unwrap(), Some(reply.len()));
        let two = b"+OK\r\n-NOSCRIPT no\r\n$-1\r\n";
        assert_eq!(frame_end(two, 0).unwrap(), Some(5));
        assert_eq!(frame_end(two, 5).unwrap(), Some(19));
        assert_eq!(frame_end(two, 19).unwrap(), Some(two.len()));
    }

    #[test]
    fn a_bulk_string_may_hold_crlf() {
        let reply = b"$4\r\n\r\n\r\n\r\n";
        assert_eq!(frame_end(reply, 0).unwrap(), Some(reply.len()));
    }

    #[test]
    fn refuses_what_is_not_resp() {
        assert!(frame_end(b"HTTP/1.1 400\r\n", 0).is_err());
        assert!(frame_end(b"$x\r\n", 0).is_err());
    }
}
