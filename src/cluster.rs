//! Redis Cluster: the connection type of the core (one server or a cluster) and what a
//! cluster needs beyond redis-rs's own handling.
//!
//! redis-rs's async cluster client routes each command by its key and follows `MOVED`/`ASK`
//! and waits out `TRYAGAIN`/`CLUSTERDOWN` a few times. On top of that:
//!
//! - a command without a key (`INFO`, `CONFIG GET`, `TIME`, `PING`, `SCRIPT LOAD`) goes to
//!   the primary of the queue's slot, the server whose settings and clock matter;
//! - a script call declares two extra keys of the queue's slot that never exist (see
//!   [`guarded_eval`]), so that Redis refuses it, before it runs, while the slot migrates:
//!   the scripts build their other keys from `ARGV`, which Redis does not check, and would
//!   read half-moved data;
//! - a refusal that wrote nothing (`TRYAGAIN`, `CLUSTERDOWN`, a redirect redis-rs gave up
//!   on) is retried with a short backoff until the command deadline ([`is_refusal`]).

use std::future::Future;
use std::time::{Duration, Instant};

use futures::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    Arg, Cmd, ConnectionInfo, FromRedisValue, RedisFuture, RedisResult, ScriptInvocation, Value,
};

use crate::connection::{addr_like, TlsMaterial};

/// The seed nodes of a cluster; any one that answers tells the whole topology.
#[derive(Clone)]
pub struct ClusterNodes {
    pub nodes: Vec<(String, u16)>,
}

impl ClusterNodes {
    /// A connection to the cluster for the queue whose keys hash like `home_key`. With no
    /// `command_timeout` (the blocking connections) commands wait as long as they need.
    pub async fn connect(
        &self,
        login: &ConnectionInfo,
        tls: Option<&TlsMaterial>,
        home_key: &str,
        connect_timeout: Duration,
        command_timeout: Option<Duration>,
    ) -> Result<ClusterConn, String> {
        // Over TLS when the login's URL is `rediss` (redis-rs takes the mode, and
        // `insecure`, from the first seed); the certificates go to every node it finds.
        let seeds = self.nodes.iter().map(|(host, port)| {
            login
                .clone()
                .set_addr(addr_like(login.addr(), host.clone(), *port))
        });
        let mut builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(connect_timeout)
            // redis-rs's own waits (from 1.28 s up) are far too long for a job queue: a few
            // short ones here, then `with_retries` waits until the command deadline.
            .retries(REDIS_RS_RETRIES)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .retry_wait_formula(10, 2);
        if let Some(timeout) = command_timeout {
            builder = builder.response_timeout(timeout);
        }
        if let Some(tls) = tls {
            builder = builder.certs(tls.certificates());
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| format!("{}: {e}", self.describe()))?;
        Ok(ClusterConn {
            conn,
            home: Route::with_key(home_key, SlotAddr::Master),
        })
    }

    /// For messages: the seed nodes.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        format!("the cluster of {}", nodes.join(","))
    }
}

const REDIS_RS_RETRIES: u32 = 4;

/// A cluster connection and the slot of its queue.
#[derive(Clone)]
pub struct ClusterConn {
    conn: ClusterConnection,
    home: Route,
}

/// The commands without a key that the core sends; redis-rs would send them to a random
/// node or to all of them.
const KEYLESS: [&[u8]; 5] = [b"INFO", b"CONFIG", b"TIME", b"PING", b"SCRIPT"];

impl ClusterConn {
    fn send<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let keyless = match cmd.args_iter().next() {
            Some(Arg::Simple(name)) => KEYLESS.iter().any(|k| k.eq_ignore_ascii_case(name)),
            _ => false,
        };
        if !keyless {
            return self.conn.req_packed_command(cmd);
        }
        let home = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(self.home));
        self.conn.route_command(cmd.clone(), home).boxed()
    }
}

/// The connection the core talks through: one server (directly or as Sentinel named it),
/// or a cluster. Cheap to clone: both kinds are handles to a shared connection.
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.send(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        // A pipeline goes to the slot of its first keyed command (the script call).
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// Run `invocation`'s script on `conn`. On a cluster the call is guarded against slot
/// migrations ([`guarded_eval`]), a script the queue's node lacks is loaded there, and
/// refusals are retried for up to `patience` ([`retry_refusals`]).
///
/// With `functions` (the library of `scripts.rs` was loaded on this connection's server)
/// the call is the `FCALL` of the same script, keys and arguments; a server that answers
/// "Function not found" (a `FUNCTION FLUSH`, a failover to a node without it) gets the
/// library and the call again, and one without functions at all the `EVALSHA`.
pub async fn invoke<T: FromRedisValue>(
    conn: &Conn,
    invocation: &ScriptInvocation<'_>,
    patience: Duration,
    functions: bool,
) -> RedisResult<T> {
    if let Some(fcall) = functions.then(|| fcall_cmd(conn, invocation)).flatten() {
        let outcome = retry_refusals(conn, patience, || async {
            let mut conn = conn.clone();
            match fcall.query_async(&mut conn).await {
                Err(e) if crate::scripts::is_function_missing(&e) => {
                    match crate::scripts::load_library_cmd()
                        .query_async::<Value>(&mut conn)
                        .await
                    {
                        Err(e) if crate::scripts::lacks_functions(&e) => Ok(None),
                        Err(e) => Err(e),
                        Ok(_) => fcall.query_async(&mut conn).await.map(Some),
                    }
                }
                // Over maxmemory Redis refuses an FCALL before it runs (nothing written);
                // an EVAL without flags is refused only at its first write, and one that
                // writes nothing, or first deletes or pops, still runs: by EVALSHA.
                Err(e) if e.code() == Some("OOM") => Ok(None),
                outcome => outcome.map(Some),
            }
        })
        .await?;
        if let Some(value) = outcome {
            return Ok(value);
        }
        // A server without functions (a failover to an older one), or over maxmemory.
    }
    if let Conn::Single(_) = conn {
        return invocation.invoke_async(&mut conn.clone()).await;
    }
    let eval = &guarded_eval(invocation);
    retry_refusals(conn, patience, || {
        loading_script(conn, invocation, |mut conn| async move {
            eval.query_async(&mut conn).await
        })
    })
    .await
}

/// `send` on `conn`; when the server answers NOSCRIPT (a primary that never ran the
/// script: new after a failover, or after a SCRIPT FLUSH), load `invocation`'s script
/// where the slot map says the queue is and send again; when it answers "Function not
/// found" (an FCALL after a FUNCTION FLUSH or a failover), load the library likewise. Just after a failover the map may
/// be stale; a second NOSCRIPT is then retried as a refusal, once the map is refreshed.
pub async fn loading_script<T, Fut>(
    conn: &Conn,
    invocation: &ScriptInvocation<'_>,
    send: impl Fn(Conn) -> Fut,
) -> RedisResult<T>
where
    Fut: Future<Output = RedisResult<T>>,
{
    match send(conn.clone()).await {
        Err(e) if e.code() == Some("NOSCRIPT") => {
            invocation.load_async(&mut conn.clone()).await?;
            send(conn.clone()).await
        }
        Err(e) if crate::scripts::is_function_missing(&e) => {
            crate::scripts::load_library_cmd()
                .query_async::<Value>(&mut conn.clone())
                .await?;
            send(conn.clone()).await
        }
        outcome => outcome,
    }
}

/// Run `attempt` again while a cluster refuses it without running it ([`is_refusal`]),
/// with a short backoff, until `patience` has passed. On one server, once: its refusals
/// are answers.
pub async fn retry_refusals<T, F, Fut>(
    conn: &Conn,
    patience: Duration,
    mut attempt: F,
) -> RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    if let Conn::Single(_) = conn {
        return attempt().await;
    }
    let deadline = Instant::now() + patience;
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(e) if is_refusal(&e) => {
                retries += 1;
                let wait = refusal_backoff(retries);
                if Instant::now() + wait >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(wait).await;
            }
            outcome => return outcome,
        }
    }
}

/// The `FCALL` of `invocation` ([`guarded_eval`]'s keys on a cluster); None for a script
/// that is not in the library.
pub fn fcall_cmd(conn: &Conn, invocation: &ScriptInvocation<'_>) -> Option<Cmd> {
    let eval = match conn {
        Conn::Single(_) => {
            let mut pipe = redis::pipe();
            pipe.invoke_script(invocation);
            let eval = pipe.cmd_iter().next().expect("one command").clone();
            eval
        }
        Conn::Cluster(_) => guarded_eval(invocation),
    };
    crate::scripts::fcall_of(&eval)
}

/// The suffixes of the two keys a guarded script call declares; no key of a queue ends so.
const PROBE_KEYS: [&str; 2] = ["cluster:probe:1", "cluster:probe:2"];

/// The `EVALSHA` of `invocation`, on a cluster with two more declared keys in the queue's
/// slot that never exist. Redis checks declared keys before a script runs: while the slot
/// migrates, the source node answers `ASK` (a declared key is missing there) and the
/// target `TRYAGAIN` (several declared keys, some missing), so the script runs only once
/// all of the queue's keys are on one node. Scripts read `KEYS[1]` only; keys after it
/// change nothing else. Without a hash tag in the first key the call is left as it is.
pub fn guarded_eval(invocation: &ScriptInvocation<'_>) -> Cmd {
    let mut pipe = redis::pipe();
    pipe.invoke_script(invocation);
    let eval = pipe.cmd_iter().next().expect("one command").clone();
    with_probe_keys(&eval).unwrap_or(eval)
}

fn with_probe_keys(eval: &Cmd) -> Option<Cmd> {
    let args: Vec<&[u8]> = eval
        .args_iter()
        .map(|arg| match arg {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let [name, sha, numkeys, rest @ ..] = args.as_slice() else {
        return None;
    };
    let numkeys: usize = std::str::from_utf8(numkeys).ok()?.parse().ok()?;
    if numkeys == 0 || rest.len() < numkeys {
        return None;
    }
    let (keys, argv) = rest.split_at(numkeys);
    let tag = hash_tag(keys[0])?;
    let mut cmd = redis::cmd(std::str::from_utf8(name).ok()?);
    cmd.arg(*sha).arg(numkeys + PROBE_KEYS.len()).arg(keys);
    for suffix in PROBE_KEYS {
        let mut probe = tag.to_vec();
        probe.push(b':');
        probe.extend_from_slice(suffix.as_bytes());
        cmd.arg(probe);
    }
    cmd.arg(argv);
    Some(cmd)
}

/// The `{...}` hash tag of a key, braces included, as Redis finds it (the first `{` and
/// the first `}` after it, not empty).
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = open + 1 + key[open + 1..].iter().position(|&b| b == b'}')?;
    (close > open + 1).then(|| &key[open..=close])
}

/// Replies by which the cluster refused a command before running it: safe to send again
/// (a slot that migrates or has no reachable primary, a redirect redis-rs gave up on, a
/// script missing on a node the caller has just loaded it on, a blocking wait ended
/// unserved because its node became a replica).
fn is_refusal(err: &redis::RedisError) -> bool {
    err.code().is_some_and(|code| {
        matches!(
            code,
            "TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK" | "NOSCRIPT" | "UNBLOCKED"
        )
    }) || crate::scripts::is_function_missing(err)
}

/// The wait before retry number `attempt` (from 1) of a refused command: 10 ms more each
/// time, at most 100 ms (a slot migration or a failover takes from milliseconds to seconds).
fn refusal_backoff(attempt: u32) -> Duration {
    Duration::from_millis((u64::from(attempt) * 10).min(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|arg| match arg {
                Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<cursor>".into(),
            })
            .collect()
    }

    #[test]
    fn guarded_eval_declares_two_probe_keys_in_the_slot() {
        let script = redis::Script::new("return 1");
        let mut invocation = script.prepare_invoke();
        invocation
            .key("jq:{emails}:meta")
            .arg("jq:{emails}:")
            .arg(7);
        let cmd = guarded_eval(&invocation);
        assert_eq!(
            words(&cmd),
            [
                "EVALSHA",
                script.get_hash(),
                "3",
                "jq:{emails}:meta",
                "{emails}:cluster:probe:1",
                "{emails}:cluster:probe:2",
                "jq:{emails}:",
                "7"
            ]
        );
    }

    #[test]
    fn a_key_without_a_hash_tag_is_left_alone() {
        let script = redis::Script::new("return 1");
        let mut invocation = script.prepare_invoke();
        invocation.key("plain").arg("x");
        assert_eq!(
            words(&guarded_eval(&invocation)),
            ["EVALSHA", script.get_hash(), "1", "plain", "x"]
        );
    }

    #[test]
    fn hash_tag_follows_redis_rules() {
        assert_eq!(hash_tag(b"a{b}c"), Some(&b"{b}"[..]));
        assert_eq!(hash_tag(b"a{}c{d}"), None);
        assert_eq!(hash_tag(b"{x}{y}"), Some(&b"{x}"[..]));
        assert_eq!(hash_tag(b"no tag"), None);
    }

    #[test]
    fn refusal_backoff_grows_and_caps() {
        assert_eq!(refusal_backoff(1), Duration::from_millis(10));
        assert_eq!(refusal_backoff(50), Duration::from_millis(100));
    }
}
