//! One multiplexed Redis connection per queue object, re-established on demand.
//!
//! A call that finds no healthy connection connects first, retrying on the schedule of the
//! user's `retry_strategy` (ioredis semantics: `times -> delay ms`, `None` gives up), never
//! longer in total than the connect timeout. A request that fails because the connection
//! broke is not retried (a script may have run); it raises `ConnectionError` and the next
//! call reconnects.
//!
//! On a cluster (`cluster.rs`) the connection is redis-rs's cluster client; script calls
//! are guarded against slot migrations, and refusals that wrote nothing are retried until
//! the command deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, FromRedisValue, ScriptInvocation};

use crate::cluster::{self, guarded_eval, ClusterNodes, Conn};
use crate::errors::{is_connection_error, JqError};
use crate::keys::QueueKeys;
use crate::redis_settings::SettingsCheck;
use crate::sentinel::{check_primary, Sentinels};

/// TLS material in PEM form, passed down from `RedisConfig(tls=...)`.
#[derive(Clone, Default)]
pub struct TlsMaterial {
    pub root_cert: Option<Vec<u8>>,
    pub client_cert: Option<Vec<u8>>,
    pub client_key: Option<Vec<u8>>,
}

impl TlsMaterial {
    /// The material as redis-rs takes it (a client certificate only with its key).
    pub fn certificates(&self) -> redis::TlsCertificates {
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            _ => None,
        };
        redis::TlsCertificates {
            client_tls,
            root_cert: self.root_cert.clone(),
        }
    }
}

/// `host:port`, reached the way `template` is: over TLS with its settings (certificates,
/// `insecure`) when `template` is, else over plain TCP. Sentinels, the primaries they name
/// and a cluster's nodes are all reached like the configured URL.
pub fn addr_like(template: &ConnectionAddr, host: String, port: u16) -> ConnectionAddr {
    match template {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    }
}

pub struct ConnectionOptions {
    pub url: String,
    pub tls: Option<TlsMaterial>,
    pub connect_timeout: Duration,
    pub command_timeout: Option<Duration>,
    pub ready_check: bool,
    pub retry_strategy: Option<Py<PyAny>>,
    /// Run on each new connection before it serves (a queue's main connection only).
    pub settings_check: Option<SettingsCheck>,
    /// Set: the queue whose keys a new connection brings to this layout before it serves
    /// (a queue's main connection only; see `layout_upgrade.rs`).
    pub upgrade_layout: Option<QueueKeys>,
    /// Set: the URL gives the login and database only; the server is the primary these
    /// sentinels name, asked again on every new connection (so after a failover too).
    pub sentinels: Option<Sentinels>,
    /// Set: the URL gives the login only; these nodes seed a cluster connection, and
    /// `home_key` (a key of the queue) names the slot that keyless commands go to.
    pub cluster: Option<ClusterNodes>,
    pub home_key: String,
}

pub struct RedisConn {
    client: Client,
    options: ConnectionOptions,
    /// The live connection and the pid that opened it (a forked child must not share it).
    current: Mutex<Option<(u32, Conn)>>,
    /// Serialises reconnects so that concurrent callers share one attempt.
    connecting: tokio::sync::Mutex<()>,
    /// The server the live connection reaches (with Sentinel: the primary it found).
    server: Mutex<Option<ConnectionAddr>>,
    /// Whether the server of the current connection has the scripts' Function library
    /// (loaded at connect; Redis >= 7.0): script calls then go by FCALL.
    functions: AtomicBool,
    /// Why script calls go by EVALSHA (None while they go by FCALL), for the health check.
    evalsha_reason: Mutex<Option<String>>,
}

fn install_crypto_provider() {
    // rustls needs a process-wide provider; a second install is a harmless no-op error.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RedisConn {
    pub fn new(options: ConnectionOptions) -> Result<Self, JqError> {
        let client = match &options.tls {
            Some(tls) => {
                install_crypto_provider();
                Client::build_with_tls(options.url.as_str(), tls.certificates())
            }
            None => {
                if options.url.starts_with("rediss://") {
                    install_crypto_provider();
                }
                Client::open(options.url.as_str())
            }
        }
        .map_err(|e| JqError::Connection(format!("invalid Redis connection settings: {e}")))?;
        Ok(Self {
            client,
            options,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            server: Mutex::new(None),
            functions: AtomicBool::new(false),
            evalsha_reason: Mutex::new(None),
        })
    }

    /// An independent connection with the same settings and no response timeout: a worker
    /// blocks on it while waiting for jobs, which would stall every request sharing it.
    pub fn for_blocking(&self, py: Python<'_>) -> Result<Self, JqError> {
        let o = &self.options;
        Self::new(ConnectionOptions {
            url: o.url.clone(),
            tls: o.tls.clone(),
            connect_timeout: o.connect_timeout,
            command_timeout: None,
            ready_check: o.ready_check,
            retry_strategy: o.retry_strategy.as_ref().map(|s| s.clone_ref(py)),
            settings_check: None,
            upgrade_layout: None,
            sentinels: o.sentinels.clone(),
            // On a cluster: a cluster connection of its own, so a blocking command stalls
            // only it (redis-rs #361); redis-rs routes it to the slot's primary and follows
            // the slot (MOVED) after a reshard or a failover.
            cluster: o.cluster.clone(),
            home_key: o.home_key.clone(),
        })
    }

    /// Whether connections are encrypted (TLS material given, or a `rediss://` URL).
    pub fn uses_tls(&self) -> bool {
        self.options.tls.is_some()
            || !matches!(
                self.client.get_connection_info().addr(),
                redis::ConnectionAddr::Tcp(..) | redis::ConnectionAddr::Unix(_)
            )
    }

    /// The login and database the URL names (and its server, unless Sentinel picks it).
    pub fn info(&self) -> &redis::ConnectionInfo {
        self.client.get_connection_info()
    }

    /// Whether this connects to a cluster (many servers: no single one to reach).
    pub fn is_cluster(&self) -> bool {
        self.options.cluster.is_some()
    }

    /// The server to reach: the URL's, or with Sentinel the primary found by the last
    /// connect (None while no connection is up: the caller waits for one).
    pub fn server(&self) -> Option<ConnectionAddr> {
        if self.options.sentinels.is_none() {
            return Some(self.info().addr().clone());
        }
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// (connect timeout, command timeout or None), in ms.
    pub fn timeouts_ms(&self) -> (u64, Option<u64>) {
        let ms = |d: Duration| d.as_millis().try_into().unwrap_or(u64::MAX);
        (
            ms(self.options.connect_timeout),
            self.options.command_timeout.map(ms),
        )
    }

    fn cached(&self) -> Option<Conn> {
        let pid = crate::runtime::current_pid();
        let slot = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((owner, conn)) if *owner == pid => Some(conn.clone()),
            _ => None,
        }
    }

    /// A healthy connection, connecting (with retries) when there is none. A new
    /// connection passes the settings check first, when there is one.
    pub async fn get(&self) -> Result<Conn, JqError> {
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let _turn = self.connecting.lock().await;
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let mut conn = self.connect_with_retries().await?;
        if let Some(check) = &self.options.settings_check {
            check.on_connect(&mut conn).await?; // a refusal drops the connection unused
        }
        self.load_library(&conn).await?;
        if let Some(keys) = &self.options.upgrade_layout {
            crate::layout_upgrade::upgrade(&conn, keys, self.patience(), self.functions()).await?;
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((crate::runtime::current_pid(), conn.clone()));
        Ok(conn)
    }

    /// Whether script calls go by FCALL (see `functions`).
    pub fn functions(&self) -> bool {
        self.functions.load(Ordering::Relaxed)
    }

    /// Load the scripts' Function library on a new connection's server (on a cluster: the
    /// primary of the queue's slot). A server without functions (Redis < 7.0), or one that
    /// refuses the load (an ACL without FUNCTION), gets the scripts by EVALSHA, as does
    /// every server when JOBQUEUE_SCRIPTS=eval is set (the fallback's tests).
    async fn load_library(&self, conn: &Conn) -> Result<(), JqError> {
        let eval_only = std::env::var("JOBQUEUE_SCRIPTS").is_ok_and(|v| v == "eval");
        let refused = if eval_only {
            Some("JOBQUEUE_SCRIPTS=eval is set".to_string())
        } else {
            // Loading compiles the whole library: only where this release's is missing.
            let outcome = cluster::retry_refusals(conn, self.patience(), || async {
                let listed: Vec<redis::Value> = redis::cmd("FUNCTION")
                    .arg("LIST")
                    .arg("LIBRARYNAME")
                    .arg(crate::scripts::library_name())
                    .query_async(&mut conn.clone())
                    .await?;
                if listed.is_empty() {
                    crate::scripts::load_library_cmd()
                        .query_async::<redis::Value>(&mut conn.clone())
                        .await?;
                }
                Ok(())
            })
            .await;
            match outcome {
                Ok(_) => None,
                Err(e) if is_connection_error(&e) => return Err(JqError::from(e)),
                Err(e) if crate::scripts::lacks_functions(&e) => {
                    Some("the server has no Redis Functions (Redis < 7.0)".to_string())
                }
                Err(e) => Some(format!("FUNCTION LOAD failed: {e}")),
            }
        };
        self.functions.store(refused.is_none(), Ordering::Relaxed);
        *self
            .evalsha_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = refused;
        Ok(())
    }

    /// Why script calls go by EVALSHA, not by FCALL of the library; None when they go by
    /// FCALL (or before the first connection).
    pub fn evalsha_reason(&self) -> Option<String> {
        self.evalsha_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drop the cached connection after an error that makes it unusable (a failover
    /// reply such as READONLY included: the next call asks the sentinels again).
    fn note_error(&self, err: &redis::RedisError) {
        if is_connection_error(err) {
            self.close();
        }
    }

    /// Close the connection; a later call would open a new one.
    pub fn close(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, JqError> {
        let conn = self.get().await?;
        let outcome = cluster::invoke(&conn, invocation, self.patience(), self.functions()).await;
        outcome.map_err(|e| {
            self.note_error(&e);
            JqError::from(e)
        })
    }

    /// How long a cluster's refusals are retried: the command timeout, else the connect
    /// timeout.
    fn patience(&self) -> Duration {
        self.options
            .command_timeout
            .unwrap_or(self.options.connect_timeout)
    }

    /// A script and `WAIT replicas timeout` in one pipeline (one round trip, on the same
    /// connection so that WAIT covers the script's writes): the reply and the number of
    /// replicas that confirmed. A script Redis does not have yet is loaded first.
    pub async fn invoke_then_wait<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<(T, i64), JqError> {
        let conn = self.get().await?;
        let fcall = self
            .functions()
            .then(|| cluster::fcall_cmd(&conn, invocation))
            .flatten();
        let outcome = self
            .script_then_wait(&conn, invocation, fcall.as_ref(), replicas, timeout_ms)
            .await;
        // Over maxmemory an FCALL is refused before it runs; by EVALSHA as before (see
        // `cluster::invoke`).
        let outcome = match outcome {
            Err(e) if fcall.is_some() && e.code() == Some("OOM") => {
                self.script_then_wait(&conn, invocation, None, replicas, timeout_ms)
                    .await
            }
            outcome => outcome,
        };
        outcome.map_err(|e| {
            self.note_error(&e);
            JqError::from(e)
        })
    }

    /// [`Self::invoke_then_wait`]'s pipeline: `fcall`, or the script by EVALSHA, then WAIT.
    async fn script_then_wait<T: FromRedisValue>(
        &self,
        conn: &Conn,
        invocation: &ScriptInvocation<'_>,
        fcall: Option<&redis::Cmd>,
        replicas: u32,
        timeout_ms: u64,
    ) -> redis::RedisResult<(T, i64)> {
        let mut pipe = redis::pipe();
        match (fcall, conn) {
            (Some(fcall), _) => pipe.add_command(fcall.clone()),
            (None, Conn::Single(_)) => pipe.invoke_script(invocation),
            (None, Conn::Cluster(_)) => pipe.add_command(guarded_eval(invocation)),
        };
        pipe.cmd("WAIT").arg(replicas).arg(timeout_ms);
        let pipe = &pipe;
        cluster::retry_refusals(conn, self.patience(), || {
            cluster::loading_script(conn, invocation, |mut conn| async move {
                pipe.query_async(&mut conn).await
            })
        })
        .await
    }

    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, JqError> {
        let conn = self.get().await?;
        let outcome = cluster::retry_refusals(&conn, self.patience(), || async {
            cmd.query_async(&mut conn.clone()).await
        })
        .await;
        outcome.map_err(|e| {
            self.note_error(&e);
            JqError::from(e)
        })
    }

    async fn connect_with_retries(&self) -> Result<Conn, JqError> {
        let deadline = Instant::now() + self.options.connect_timeout;
        let mut times: u32 = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(remaining, self.connect_once(remaining)).await
            {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "no answer within the connect timeout of {} ms",
                    self.options.connect_timeout.as_millis()
                )),
            };
            let reason = match outcome {
                Ok(conn) => return Ok(conn),
                Err(reason) => reason,
            };
            times += 1;
            let delay = match self.retry_delay(times) {
                Ok(Some(delay)) => delay,
                Ok(None) => return Err(self.unreachable(&reason, "retry_strategy gave up")),
                Err(why) => return Err(self.unreachable(&reason, &why)),
            };
            if Instant::now() + delay >= deadline {
                return Err(self.unreachable(&reason, "connect timeout reached"));
            }
            tokio::time::sleep(delay).await;
        }
    }

    fn unreachable(&self, reason: &str, stop: &str) -> JqError {
        let target = match (&self.options.sentinels, &self.options.cluster) {
            (Some(sentinels), _) => sentinels.describe(),
            (None, Some(cluster)) => cluster.describe(),
            (None, None) => redact(&self.options.url),
        };
        JqError::Connection(format!(
            "cannot connect to Redis at {target}: {reason} ({stop})"
        ))
    }

    async fn connect_once(&self, timeout: Duration) -> Result<Conn, String> {
        if let Some(cluster) = &self.options.cluster {
            let conn = cluster
                .connect(
                    self.info(),
                    self.options.tls.as_ref(),
                    &self.options.home_key,
                    timeout,
                    self.options.command_timeout,
                )
                .await?;
            let mut conn = Conn::Cluster(conn);
            if self.options.ready_check {
                wait_until_loaded(&mut conn).await?;
            }
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(self.options.command_timeout);
        let (conn, server) = match &self.options.sentinels {
            None => {
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config);
                (
                    conn.await.map_err(|e| e.to_string())?,
                    self.info().addr().clone(),
                )
            }
            Some(sentinels) => {
                let primary = sentinels.primary(timeout, self.info().addr()).await?;
                let info = self.info().clone().set_addr(primary.clone());
                let client = Client::open(info).map_err(|e| e.to_string())?;
                let conn = client.get_multiplexed_async_connection_with_config(&config);
                let mut conn = conn.await.map_err(|e| format!("{primary}: {e}"))?;
                check_primary(&mut conn).await?;
                (conn, primary)
            }
        };
        let mut conn = Conn::Single(conn);
        if self.options.ready_check {
            wait_until_loaded(&mut conn).await?;
        }
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
        Ok(conn)
    }

    /// Ask the user's `retry_strategy` how long to wait before attempt `times + 1`.
    fn retry_delay(&self, times: u32) -> Result<Option<Duration>, String> {
        let Some(strategy) = &self.options.retry_strategy else {
            return Ok(Some(default_retry_delay(times)));
        };
        Python::attach(|py| {
            let answer = strategy
                .call1(py, (times,))
                .map_err(|e| format!("retry_strategy raised {e}"))?;
            let answer = answer.bind(py);
            if answer.is_none() || answer.extract::<bool>().is_ok_and(|b| !b) {
                return Ok(None);
            }
            let ms: f64 = answer
                .extract()
                .map_err(|_| "retry_strategy must return a number of ms or None".to_string())?;
            Ok(Some(Duration::from_millis(ms.max(0.0) as u64)))
        })
    }
}

/// The default reconnect schedule: 50 ms more per attempt, at most 2 s.
pub fn default_retry_delay(times: u32) -> Duration {
    Duration::from_millis((u64::from(times) * 50).min(2000))
}

/// The ready check: a server still loading its dataset answers `LOADING` to most commands.
async fn wait_until_loaded(conn: &mut Conn) -> Result<(), String> {
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        if !info.lines().any(|l| l.trim() == "loading:1") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The URL without its password, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("rediss://:pw@h/1"), "rediss://:***@h/1");
    }

    #[test]
    fn default_retry_delay_grows_and_caps() {
        assert_eq!(default_retry_delay(1), Duration::from_millis(50));
        assert_eq!(default_retry_delay(10), Duration::from_millis(500));
        assert_eq!(default_retry_delay(1000), Duration::from_millis(2000));
    }
}
