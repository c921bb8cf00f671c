//! The Lua scripts, one file each, embedded at compile time behind the shared helpers of
//! `lua/lib.lua`. `redis::Script` runs them by EVALSHA and loads a script again when the
//! server answers NOSCRIPT.
//!
//! Redis runs a script's whole text on every call, so each script gets only the helpers it
//! uses ([`script_source`]), and it declares one key instead of all of the queue's: both
//! showed in the instructions Redis spends per call (`benches/redis_cost.py`).

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::LazyLock;

use redis::{Cmd, Script, ScriptInvocation, ToRedisArgs};

use crate::keys::{QueueKeys, QUEUE_KEYS};

const LIB: &str = include_str!("lua/lib.lua");

/// What every script starts with: the key base (ARGV[1]).
const BASE_LINE: &str = "local BASE = ARGV[1]\n";

/// The table `K` of the queue's keys, with those for which `keep` holds. The meta key is
/// the one declared key (KEYS[1]); the others are built from the base, so they share its
/// hash tag and stay in its slot on a Redis Cluster, like the job keys the scripts build.
fn key_table(keep: impl Fn(&str) -> bool) -> String {
    let mut lua = String::from("local K = {\n");
    for (name, suffix) in QUEUE_KEYS {
        if name == "meta" {
            lua.push_str("  meta = KEYS[1],\n");
        } else if keep(name) {
            writeln!(lua, "  {name} = BASE .. '{suffix}',").expect("writing to a String");
        }
    }
    lua.push_str("}\n");
    lua
}

/// The prelude with every key.
#[cfg(test)]
fn prelude() -> String {
    String::from(BASE_LINE) + &key_table(|_| true)
}

/// The top-level statements of `lib`, each as (the names it defines, its text). A statement
/// starts at a line beginning with `local`; the lines up to the next one belong to it.
fn statements(lib: &str) -> Vec<(Vec<&str>, String)> {
    let mut out: Vec<(Vec<&str>, String)> = Vec::new();
    for line in lib.lines() {
        if let Some(rest) = line.strip_prefix("local ") {
            let names = match rest.strip_prefix("function ") {
                Some(function) => function.split('(').next().unwrap_or("").trim(),
                None => rest.split('=').next().unwrap_or(""),
            };
            out.push((names.split(',').map(str::trim).collect(), String::new()));
        }
        if let Some((_, text)) = out.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// `script` behind the prelude and those statements of `lib.lua` it uses, directly or
/// through other helpers. A statement only uses earlier ones, so one pass from the last
/// statement back finds them all; a name that appears only in a comment keeps a helper in
/// (harmless), never out. The table `K` gets only the keys whose names appear in the
/// script or its helpers: Redis builds it on every call, a string concatenation per key
/// (a key read as `K[name]` appears too, as the string that `name` holds).
fn script_source(script: &str) -> String {
    let all = statements(LIB);
    let mut needed: HashSet<&str> = words(script).collect();
    let mut kept = vec![false; all.len()];
    for (i, (names, text)) in all.iter().enumerate().rev() {
        if names.iter().any(|name| needed.contains(name)) {
            kept[i] = true;
            needed.extend(words(text));
        }
    }
    let mut source = String::from(BASE_LINE);
    if needed.contains("K") {
        source.push_str(&key_table(|name| needed.contains(name)));
    }
    for ((_, text), keep) in all.iter().zip(kept) {
        if keep {
            source.push_str(text);
        }
    }
    source.push_str(script);
    source
}

macro_rules! lua_script {
    ($name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(&script_source(include_str!(concat!("lua/", $file)))));
    };
}

/// An invocation of `script` on a queue: the queue's one declared key and the key base as
/// the first argument (see [`prelude`]); callers add the rest.
pub fn invocation(script: &'static Script, keys: &QueueKeys) -> ScriptInvocation<'static> {
    let mut inv = script.prepare_invoke();
    inv.key(keys.declared());
    inv.arg(keys.base());
    inv
}

/// The same call as [`invocation`], as an `EVALSHA` command to send on a connection of
/// our own (`loop_conn.rs`); a server that answers NOSCRIPT gets the script's source.
pub fn evalsha(script: &Script, keys: &QueueKeys) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(1)
        .arg(keys.declared())
        .arg(keys.base());
    cmd
}

/// Where the arguments of a script call go: an invocation that redis-rs sends, or a
/// command of our own; builders of arguments serve both.
pub trait ScriptArgs {
    fn push<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self;
}

impl ScriptArgs for ScriptInvocation<'_> {
    fn push<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.arg(arg)
    }
}

impl ScriptArgs for Cmd {
    fn push<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.arg(arg)
    }
}

/// The source of `add_jobs`, sent with SCRIPT LOAD when a server lost its script cache.
pub static ADD_JOBS_SOURCE: LazyLock<String> =
    LazyLock::new(|| script_source(include_str!("lua/add_jobs.lua")));
/// Built from the one source above, so the script and what SCRIPT LOAD sends cannot differ.
pub static ADD_JOBS: LazyLock<Script> = LazyLock::new(|| Script::new(&ADD_JOBS_SOURCE));
lua_script!(GET_JOB, "get_job.lua");
lua_script!(GET_JOBS, "get_jobs.lua");
lua_script!(GET_STATS, "get_stats.lua");
lua_script!(REMOVE_JOB, "remove_job.lua");
lua_script!(DRAIN, "drain.lua");
lua_script!(CLEAR, "clear.lua");
lua_script!(SET_PAUSED, "set_paused.lua");
lua_script!(HEALTH, "health.lua");
lua_script!(FETCH, "fetch.lua");
lua_script!(ACK, "ack.lua");
lua_script!(EXTEND_LOCKS, "extend_locks.lua");
lua_script!(STALLED, "stalled.lua");
lua_script!(RELEASE, "release.lua");
lua_script!(UPDATE_JOB, "update_job.lua");
lua_script!(RETRY_JOBS, "retry_jobs.lua");
lua_script!(UPSERT_SCHEDULE, "upsert_schedule.lua");
lua_script!(CLAIM_SCHEDULE, "claim_schedule.lua");
lua_script!(NEXT_SCHEDULE, "next_schedule.lua");
lua_script!(LIST_SCHEDULES, "list_schedules.lua");
lua_script!(UNSCHEDULE, "unschedule.lua");
lua_script!(SET_CONCURRENCY, "set_concurrency.lua");
lua_script!(SET_GROUP_LIMIT, "set_group_limit.lua");
lua_script!(SET_GROUP_PAUSED, "set_group_paused.lua");
lua_script!(GET_GROUP_STATS, "get_group_stats.lua");
lua_script!(UPGRADE_LAYOUT, "upgrade_layout.lua");
lua_script!(WAKE_PARTITIONS, "wake_partitions.lua");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_gets_the_helpers_it_uses_and_theirs_only() {
        let source = script_source("return jobKey(ARGV[2])");
        assert!(source.starts_with("local BASE = ARGV[1]\n"));
        assert!(source.contains("local function jobKey("));
        assert!(!source.contains("local K ="), "no key of K is used");
        assert!(!source.contains("local function applyRetention("));
        // enqueueJobs uses addEvent, which uses flushEvents: both come along.
        let add = script_source("enqueueJobs(ARGV, 5, 1, 0, '0', 0)");
        for helper in [
            "enqueueJobs",
            "addEvent",
            "flushEvents",
            "clipUtf8",
            "chunks",
        ] {
            assert!(
                add.contains(&format!("local function {helper}(")),
                "{helper}"
            );
        }
        assert!(!add.contains("local function keep("));
    }

    #[test]
    fn k_holds_the_keys_a_script_names() {
        let source = script_source("return redis.call('LLEN', K.wait)");
        assert!(source.contains("  wait = BASE .. 'wait:2',\n"));
        assert!(source.contains("  meta = KEYS[1],\n"));
        assert!(!source.contains("groupsParked"));
        // leaveGroup brings the keys it uses along.
        let source = script_source("leaveGroup('g', 1)");
        assert!(source.contains("  groupsParked = BASE .. 'groups:parked:2',\n"));
        assert!(source.contains("  marker = BASE .. 'marker:2',\n"));
    }

    #[test]
    fn k_names_every_queue_key_from_the_base() {
        let prelude = prelude();
        for (name, suffix) in QUEUE_KEYS.iter().skip(1) {
            assert!(
                prelude.contains(&format!("  {name} = BASE .. '{suffix}',\n")),
                "{name}"
            );
        }
    }
    use crate::keys::{QueueKeys, LAYOUT_VERSION};
    use crate::test_redis::TestRedis;

    /// The reply of add_jobs: (time added, status of the jobs not delayed, ids, created).
    type Added = (i64, String, Vec<String>, Vec<i64>);

    /// (job id, name, priority, delay) -> the add_jobs invocation for those jobs.
    fn add(keys: &QueueKeys, jobs: &[(&str, &str, u32, u64)]) -> redis::ScriptInvocation<'static> {
        let mut inv = invocation(&ADD_JOBS, keys);
        inv.arg(LAYOUT_VERSION).arg(60_000).arg(jobs.len());
        for (id, name, priority, delay) in jobs {
            inv.arg(*id)
                .arg(*name)
                .arg("{}")
                .arg("{}")
                .arg(*priority)
                .arg(*delay)
                .arg(1)
                .arg("");
        }
        inv
    }

    #[test]
    fn add_jobs_orders_waiting_jobs_by_priority_then_fifo() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let keys = QueueKeys::new("jq", "order");
        let jobs = [
            ("", "a", 5, 0),
            ("", "b", 0, 0),
            ("", "c", 1, 0),
            ("", "d", 5, 0),
            ("", "e", 0, 0),
            ("", "f", 1, 0),
            ("", "g", 0, 1000),
        ];
        let (_, status, ids, created): Added = add(&keys, &jobs).invoke(&mut con).unwrap();
        assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7"]);
        assert_eq!(created, [1; 7]);
        assert_eq!(status, "waiting");
        let wait: Vec<String> = redis::cmd("LRANGE")
            .arg(&keys.wait)
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert_eq!(wait, ["2", "5"]);
        let prioritized: Vec<String> = redis::cmd("ZRANGE")
            .arg(&keys.prioritized)
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert_eq!(prioritized, ["3", "6", "1", "4"]);
        let delayed: Vec<String> = redis::cmd("ZRANGE")
            .arg(&keys.delayed)
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert_eq!(delayed, ["7"]);
    }

    #[test]
    fn add_jobs_returns_the_existing_id_for_a_repeated_custom_id() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let keys = QueueKeys::new("jq", "custom");
        let first: Added = add(&keys, &[("order-1", "x", 0, 0)])
            .invoke(&mut con)
            .unwrap();
        let again: Added = add(&keys, &[("order-1", "x", 0, 0)])
            .invoke(&mut con)
            .unwrap();
        assert_eq!((first.2[0].as_str(), first.3[0]), ("order-1", 1));
        assert_eq!((again.2[0].as_str(), again.3[0]), ("order-1", 0));
        let waiting: i64 = redis::cmd("LLEN").arg(&keys.wait).query(&mut con).unwrap();
        assert_eq!(waiting, 1);
    }

    #[test]
    fn add_jobs_refuses_a_queue_of_another_layout_version() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let keys = QueueKeys::new("jq", "old");
        let _: () = redis::cmd("HSET")
            .arg(&keys.meta)
            .arg("version")
            .arg("0")
            .query(&mut con)
            .unwrap();
        let err = add(&keys, &[("", "x", 0, 0)])
            .invoke::<Added>(&mut con)
            .unwrap_err();
        let mapped = crate::errors::JqError::from(err);
        assert!(
            matches!(mapped, crate::errors::JqError::LayoutVersion(_)),
            "{mapped:?}"
        );
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&keys.wait)
            .query(&mut con)
            .unwrap();
        assert_eq!(exists, 0);
    }

    #[test]
    fn drain_works_in_batches_until_empty() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let keys = QueueKeys::new("jq", "drain");
        let jobs: Vec<(&str, &str, u32, u64)> =
            (0..25).map(|i| ("", "j", (i % 3) as u32, 0)).collect();
        let _: Added = add(&keys, &jobs).invoke(&mut con).unwrap();
        let mut rounds = 0;
        loop {
            let (removed, left): (i64, i64) = invocation(&DRAIN, &keys)
                .arg(10)
                .arg("0")
                .invoke(&mut con)
                .unwrap();
            rounds += 1;
            assert!(removed <= 10);
            if left == 0 {
                break;
            }
        }
        assert_eq!(rounds, 3);
        let job_keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}j:*", keys.base()))
            .query(&mut con)
            .unwrap();
        assert!(job_keys.is_empty(), "{job_keys:?}");
    }
}
