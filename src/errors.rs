//! Errors of the native core and their mapping onto `jobqueue.errors`.

use pyo3::PyErr;

pyo3::import_exception!(jobqueue.errors, ConnectionError);
pyo3::import_exception!(jobqueue.errors, SerializationError);
pyo3::import_exception!(jobqueue.errors, PayloadTooLargeError);
pyo3::import_exception!(jobqueue.errors, JobNotFoundError);
pyo3::import_exception!(jobqueue.errors, InvalidStateError);
pyo3::import_exception!(jobqueue.errors, LayoutVersionError);
pyo3::import_exception!(jobqueue.errors, RedisError);
pyo3::import_exception!(jobqueue.errors, RedisOutOfMemoryError);
pyo3::import_exception!(jobqueue.errors, UnsafeRedisError);

/// Error codes our Lua scripts raise with `redis.error_reply("<CODE> message")`.
pub const CODE_NOT_FOUND: &str = "JQ_NOT_FOUND";
pub const CODE_ACTIVE: &str = "JQ_ACTIVE";
pub const CODE_STATE: &str = "JQ_STATE";
pub const CODE_LAYOUT: &str = "JQ_LAYOUT";
/// The code of Redis's refusal of a write while used memory is over `maxmemory`.
pub const CODE_OOM: &str = "OOM";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JqError {
    /// Redis cannot be reached, or the connection broke mid-request.
    #[error("{0}")]
    Connection(String),
    /// A value that is not plain JSON.
    #[error("{0}")]
    Serialization(String),
    /// A payload over the configured `max_payload_bytes`.
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    JobNotFound(String),
    /// The job is in a state that forbids the operation (e.g. removing an active job).
    #[error("{0}")]
    InvalidState(String),
    /// The queue's keys were written by an incompatible layout version.
    #[error("{0}")]
    LayoutVersion(String),
    /// Redis is over `maxmemory` and refused a write (the request wrote nothing).
    #[error("{0}")]
    OutOfMemory(String),
    /// The server's settings can lose jobs and the queue was told to refuse such a server.
    #[error("{0}")]
    UnsafeRedis(String),
    /// Any other error reply from Redis.
    #[error("{0}")]
    Redis(String),
}

impl From<redis::RedisError> for JqError {
    fn from(err: redis::RedisError) -> Self {
        if is_connection_error(&err) {
            return JqError::Connection(format!("Redis connection failed: {err}"));
        }
        let detail = err.detail().unwrap_or_default().to_string();
        match err.code() {
            Some(CODE_NOT_FOUND) => JqError::JobNotFound(detail),
            Some(CODE_ACTIVE) | Some(CODE_STATE) => JqError::InvalidState(detail),
            Some(CODE_LAYOUT) => JqError::LayoutVersion(detail),
            Some(CODE_OOM) => JqError::OutOfMemory(format!(
                "Redis is out of memory (used memory is over maxmemory and \
                 maxmemory-policy evicts nothing): the request was refused and wrote \
                 nothing ({err})"
            )),
            _ => JqError::Redis(format!("Redis error: {err}")),
        }
    }
}

/// Errors after which the connection cannot be trusted and must be re-established.
pub fn is_connection_error(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

impl From<JqError> for PyErr {
    fn from(err: JqError) -> PyErr {
        match err {
            JqError::Connection(m) => ConnectionError::new_err(m),
            JqError::Serialization(m) => SerializationError::new_err(m),
            JqError::PayloadTooLarge(m) => PayloadTooLargeError::new_err(m),
            JqError::JobNotFound(m) => JobNotFoundError::new_err(m),
            JqError::InvalidState(m) => InvalidStateError::new_err(m),
            JqError::LayoutVersion(m) => LayoutVersionError::new_err(m),
            JqError::OutOfMemory(m) => RedisOutOfMemoryError::new_err(m),
            JqError::UnsafeRedis(m) => UnsafeRedisError::new_err(m),
            JqError::Redis(m) => RedisError::new_err(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError};

    #[test]
    fn io_errors_are_connection_errors() {
        let err = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by peer",
        ));
        assert!(matches!(JqError::from(err), JqError::Connection(_)));
    }

    #[test]
    fn an_oom_refusal_is_out_of_memory() {
        let reply = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";
        let redis::Value::ServerError(refusal) = redis::parse_redis_value(reply).unwrap() else {
            panic!("not an error reply");
        };
        let err = JqError::from(RedisError::from(refusal));
        assert!(matches!(err, JqError::OutOfMemory(_)), "{err:?}");
    }

    #[test]
    fn other_client_errors_are_redis_errors() {
        let err = RedisError::from((ErrorKind::UnexpectedReturnType, "bad type"));
        assert!(matches!(JqError::from(err), JqError::Redis(_)));
    }
}
