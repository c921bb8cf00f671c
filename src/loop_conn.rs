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
//! futures. The channel carries `add_jobs` and a flow's `add_flow` calls (the same reply);
//! Python falls back to the native connection (with its connect retries) whenever this
//! one is not open.
//!
//! Single adds coalesce (`jobqueue.coalesce`): one that finds the connection idle is sent
//! at once; the others are checked and queued here, each with its caller's future, and
//! go out together as one add_jobs call when Python flushes. Its reply settles each
//! caller with its own job.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use redis::{Cmd, ConnectionAddr, FromRedisValue, Script, Value};

use crate::errors::{is_connection_error, JqError};
use crate::flows::{add_flow_args, FlowFamily};
use crate::keys::QueueKeys;
use crate::queue::{added_jobs, AddJobsReply, NewJob, PreparedJob, QueueCore};
use crate::scripts;

/// A coalesced batch is sent once it holds this many jobs or bytes of job data, without
/// waiting for the flush: one call stays short for Redis, and well under its request
/// limits (`client-query-buffer-limit`), which a batch of separate adds must not reach.
pub(crate) const MAX_BATCH_JOBS: usize = 1000;
pub(crate) const MAX_BATCH_BYTES: usize = 1 << 20;
/// The least number of queued adds that an idle connection takes early (see `State::eager`).
const MIN_EAGER: usize = 8;

/// Where to connect: ("tcp", host, port) or ("unix", path, 0), and the connect and
/// command timeouts in ms (None: no command timeout).
pub type Endpoint = (String, String, u16, u64, Option<u64>);

/// A script this channel calls (its reply is add_jobs'), and the source it loads when the
/// server lost its script cache.
#[derive(Clone, Copy)]
struct Sent {
    script: &'static LazyLock<Script>,
    source: &'static LazyLock<String>,
}

const ADD_JOBS: Sent = Sent {
    script: &scripts::ADD_JOBS,
    source: &scripts::ADD_JOBS_SOURCE,
};
const ADD_FLOW: Sent = Sent {
    script: &scripts::ADD_FLOW,
    source: &scripts::ADD_FLOW_SOURCE,
};

enum Kind {
    /// A command of the handshake (AUTH, SELECT, PING); the last one holds the future.
    Handshake,
    /// SCRIPT LOAD sent after a NOSCRIPT; the resent request that follows reports errors.
    ScriptLoad,
    /// A call of `script`. `callers`: None for one `add_jobs` or `add_flow` call (its
    /// future gets the list); for coalesced single adds, one future per job (each gets its
    /// own job, or the error) while the request's own future only tells that the reply
    /// came (for the command timeout).
    Add {
        script: Sent,
        request: Vec<u8>,
        delayed: Vec<bool>,
        resent: bool,
        callers: Option<Vec<Py<PyAny>>>,
    },
}

/// A single add waiting for the next flush.
struct Queued {
    job: PreparedJob,
    caller: Py<PyAny>,
}

struct Pending {
    future: Option<Py<PyAny>>,
    kind: Kind,
}

#[derive(Default)]
struct State {
    buffer: Vec<u8>,
    pending: VecDeque<Pending>,
    queued: Vec<Queued>,
    queued_bytes: usize,
    /// While a flush is due and nothing is in flight, this many queued adds go at once, so
    /// that Redis runs them while the rest of a wave of callers is checked and queued:
    /// half the callers of the last coalesced batch answered, whom its reply woke (with
    /// one batch in flight at a time, Redis and this process would take turns).
    eager: Option<usize>,
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
    /// A channel for `core`'s server, or None when its connection needs TLS, is to a
    /// cluster or its adds WAIT for replicas (all stay on the native connection). With Sentinel, the server
    /// is the primary the native connection found; while it has none this raises
    /// `ConnectionError` and the caller keeps to the native connection for now.
    pub(crate) fn for_queue(core: &Arc<QueueCore>) -> PyResult<Option<(Endpoint, LoopChannel)>> {
        let conn = &core.conn;
        if conn.uses_tls() || conn.is_cluster() || core.durability.is_some() {
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

    /// The FCALL (or EVALSHA) of `script` on the queue of `keys`, for its arguments.
    fn call(&self, script: Sent, keys: &QueueKeys) -> Cmd {
        scripts::evalsha(script.script, keys, self.core.conn.functions())
    }

    /// Queue the call `cmd` of `script` for its reply; returns the bytes to write.
    fn queue_call<'py>(
        &self,
        py: Python<'py>,
        script: Sent,
        cmd: Cmd,
        delayed: Vec<bool>,
        future: Option<Py<PyAny>>,
        callers: Option<Vec<Py<PyAny>>>,
    ) -> Bound<'py, PyBytes> {
        let request = cmd.get_packed_command();
        let bytes = PyBytes::new(py, &request);
        self.state().pending.push_back(Pending {
            future,
            kind: Kind::Add {
                script,
                request,
                delayed,
                resent: false,
                callers,
            },
        });
        bytes
    }

    /// Turn one reply into how its request's futures settle (pushed to `out`); a NOSCRIPT
    /// answer queues the script and the request again (written by the caller after the
    /// replies it reads). Returns the number of coalesced callers the reply answered.
    fn settle(
        &self,
        py: Python<'_>,
        pending: Pending,
        value: Value,
        out: &mut Vec<Settle>,
        requeue: &mut Vec<Pending>,
        resend: &mut Vec<u8>,
    ) -> usize {
        let future = pending.future;
        match (pending.kind, value) {
            (Kind::ScriptLoad, _) => {}
            (Kind::Handshake, Value::ServerError(err)) => {
                let err = JqError::Connection(format!("Redis refused the handshake: {err}"));
                out.extend(future.map(|f| Settle::Error(f, err.into())));
            }
            (Kind::Handshake, _) => out.extend(future.map(|f| Settle::Value(f, py.None()))),
            (
                Kind::Add {
                    script,
                    request,
                    delayed,
                    resent: false,
                    callers,
                },
                Value::ServerError(err),
            ) if err.code() == "NOSCRIPT"
                || (err.code() == "ERR"
                    && err
                        .details()
                        .is_some_and(|d| d.starts_with("Function not found"))) =>
            {
                let load = if err.code() == "NOSCRIPT" {
                    let mut load = redis::cmd("SCRIPT");
                    load.arg("LOAD").arg(script.source.as_str());
                    load
                } else {
                    scripts::load_library_cmd()
                };
                load.write_packed_command(resend);
                resend.extend_from_slice(&request);
                requeue.push(Pending {
                    future: None,
                    kind: Kind::ScriptLoad,
                });
                requeue.push(Pending {
                    future,
                    kind: Kind::Add {
                        script,
                        request,
                        delayed,
                        resent: true,
                        callers,
                    },
                });
            }
            // Over maxmemory Redis refuses an FCALL before it runs; an EVAL without flags
            // is refused only at its first write (and one that writes nothing answers):
            // the same request by EVALSHA keeps that behaviour.
            (
                Kind::Add {
                    script,
                    request,
                    delayed,
                    resent: false,
                    callers,
                },
                Value::ServerError(err),
            ) if err.code() == "OOM" => {
                match scripts::fcall_request_as_evalsha(&request, script.script) {
                    Some(eval) => {
                        resend.extend_from_slice(&eval);
                        requeue.push(Pending {
                            future,
                            kind: Kind::Add {
                                script,
                                request: eval,
                                delayed,
                                resent: false,
                                callers,
                            },
                        });
                    }
                    None => {
                        let pending = Pending {
                            future,
                            kind: Kind::Add {
                                script,
                                request,
                                delayed,
                                resent: true,
                                callers,
                            },
                        };
                        return self.settle(
                            py,
                            pending,
                            Value::ServerError(err),
                            out,
                            requeue,
                            resend,
                        );
                    }
                }
            }
            (
                Kind::Add {
                    delayed, callers, ..
                },
                value,
            ) => {
                let outcome = match value {
                    Value::ServerError(err) => Err(JqError::from(redis::RedisError::from(err))),
                    value => AddJobsReply::from_redis_value(value)
                        .map_err(|e| JqError::Redis(format!("unexpected reply: {e}"))),
                }
                .map(|reply| added_jobs(reply, &delayed));
                let Some(callers) = callers else {
                    out.extend(future.map(|f| match outcome {
                        Ok(added) => match added.into_pyobject(py) {
                            Ok(result) => Settle::Value(f, result.unbind()),
                            Err(err) => Settle::Error(f, err),
                        },
                        Err(err) => Settle::Error(f, err.into()),
                    }));
                    return 0;
                };
                let answered = callers.len();
                match outcome {
                    Ok(added) => out.extend(callers.into_iter().zip(added).map(|(f, job)| {
                        match job.into_pyobject(py) {
                            Ok(result) => Settle::Value(f, result.into_any().unbind()),
                            Err(err) => Settle::Error(f, err),
                        }
                    })),
                    // Each caller gets an exception of its own (a shared one would collect
                    // every caller's traceback).
                    Err(err) => out.extend(
                        callers
                            .into_iter()
                            .map(|f| Settle::Error(f, err.clone().into())),
                    ),
                }
                out.extend(future.map(|f| Settle::Value(f, py.None())));
                return answered;
            }
        }
        0
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
        let mut cmd = self.call(ADD_JOBS, &self.core.keys);
        let delayed = self.core.add_jobs_args(&mut cmd, jobs)?;
        Ok(self.queue_call(py, ADD_JOBS, cmd, delayed, Some(future), None))
    }

    /// As `add_jobs`, the add_flow.lua call of `NativeFlows.add` (same arguments): on a
    /// single server every queue's slot is here, `queue`'s too.
    fn add_flow<'py>(
        &self,
        py: Python<'py>,
        queue: &str,
        jobs: Vec<NewJob<'py>>,
        families: Vec<FlowFamily>,
        parents: Vec<(usize, usize)>,
        future: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut cmd = self.call(ADD_FLOW, &self.core.keys.sibling(queue));
        let delayed = add_flow_args(&self.core, &mut cmd, jobs, &families, &parents)?;
        Ok(self.queue_call(py, ADD_FLOW, cmd, delayed, Some(future), None))
    }

    /// Check one single add and queue it with its caller's `future`, which resolves to
    /// the job's `(id, created, created_at, status)`, to None when the job was never sent
    /// (the connection closed first: the caller sends it elsewhere), or to the error of
    /// its batch. Bad input raises here and queues nothing. Returns True when the caller
    /// should flush now: the connection is idle and `hold` (a flush is already due) is
    /// false, or it is idle and enough adds are queued (`State::eager`), or the queued
    /// batch is full.
    fn submit(&self, job: NewJob<'_>, future: Py<PyAny>, hold: bool) -> PyResult<bool> {
        let job = self.core.prepare_job(job, None)?;
        let mut state = self.state();
        let idle = state.pending.is_empty();
        let lone = idle && !hold && state.queued.is_empty();
        state.queued_bytes += job.size();
        state.queued.push(Queued {
            job,
            caller: future,
        });
        let queued = state.queued.len();
        let early = idle && state.eager.is_some_and(|eager| queued >= eager);
        Ok(lone || early || queued >= MAX_BATCH_JOBS || state.queued_bytes >= MAX_BATCH_BYTES)
    }

    /// Pack every queued single add whose caller still waits into one add_jobs request;
    /// `future` (optional) resolves to None when its reply came. Returns the bytes to
    /// write, or None when no caller is left (all cancelled: nothing is sent for them).
    fn flush<'py>(
        &self,
        py: Python<'py>,
        future: Option<Py<PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let queued = {
            let mut state = self.state();
            state.queued_bytes = 0;
            std::mem::take(&mut state.queued)
        };
        let mut jobs = Vec::with_capacity(queued.len());
        let mut callers = Vec::with_capacity(queued.len());
        for Queued { job, caller } in queued {
            if !caller
                .bind(py)
                .call_method0(intern!(py, "done"))?
                .is_truthy()?
            {
                jobs.push(job);
                callers.push(caller);
            }
        }
        if jobs.is_empty() {
            return Ok(None);
        }
        let mut cmd = self.call(ADD_JOBS, &self.core.keys);
        let delayed = self.core.push_add_jobs_args(&mut cmd, jobs.iter());
        Ok(Some(self.queue_call(
            py,
            ADD_JOBS,
            cmd,
            delayed,
            future,
            Some(callers),
        )))
    }

    /// Take bytes read from the socket: settle the futures of every complete reply.
    /// Returns bytes to write (a request resent after NOSCRIPT) or None, and whether a
    /// reply answered coalesced adds of several callers (who may well add again at once).
    /// Raises when the stream is not RESP or a reply has no request: the connection is
    /// then unusable.
    fn feed<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<(Option<Bound<'py, PyBytes>>, bool)> {
        let mut settled = Vec::new();
        let mut resend = Vec::new();
        let mut answered = 0;
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
                let settled_here =
                    self.settle(py, pending, value, &mut settled, &mut requeue, &mut resend);
                answered = answered.max(settled_here);
                if failover {
                    break Some(JqError::Connection(
                        "Redis connection failed: the server is no longer the primary".into(),
                    ));
                }
            };
            state.buffer.drain(..at);
            state.pending.extend(requeue);
            if answered > 1 {
                state.eager = Some((answered / 2).max(MIN_EAGER));
            }
            broken
        };
        // Replies read before a broken one still settle their futures.
        for settle in settled {
            apply(py, settle)?;
        }
        if let Some(err) = broken {
            return Err(err.into());
        }
        Ok((
            (!resend.is_empty()).then(|| PyBytes::new(py, &resend)),
            answered > 1,
        ))
    }

    /// The connection is gone: every request written gets `error` (each coalesced caller
    /// a copy of its own), and single adds still queued resolve to None (never sent).
    fn fail_all(&self, py: Python<'_>, error: Bound<'_, PyAny>) -> PyResult<()> {
        let (pending, queued) = {
            let mut state = self.state();
            state.buffer.clear();
            state.queued_bytes = 0;
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.queued),
            )
        };
        let copy = || -> PyErr {
            match error.get_type().call1((error.str().ok(),)) {
                Ok(fresh) => PyErr::from_value(fresh),
                Err(_) => PyErr::from_value(error.clone()),
            }
        };
        let mut settles = Vec::new();
        for pending in pending {
            match (pending.kind, pending.future) {
                (
                    Kind::Add {
                        callers: Some(callers),
                        ..
                    },
                    future,
                ) => {
                    settles.extend(callers.into_iter().map(|f| Settle::Error(f, copy())));
                    settles.extend(future.map(|f| Settle::Value(f, py.None())));
                }
                (_, Some(future)) => {
                    settles.push(Settle::Error(future, PyErr::from_value(error.clone())))
                }
                (_, None) => {}
            }
        }
        settles.extend(
            queued
                .into_iter()
                .map(|q| Settle::Value(q.caller, py.None())),
        );
        for settle in settles {
            apply(py, settle)?;
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
