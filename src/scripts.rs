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

/// The helpers: lib.lua's, then those of flows (they use lib.lua's).
const LIB: &str = concat!(
    include_str!("lua/lib.lua"),
    include_str!("lua/lib_flows.lua")
);

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
/// With `functions` (the server has the library) it is the `FCALL` of the same call.
pub fn evalsha(script: &Script, keys: &QueueKeys, functions: bool) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(1)
        .arg(keys.declared())
        .arg(keys.base());
    if functions {
        if let Some(fcall) = fcall_of(&cmd) {
            return fcall;
        }
    }
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

/// The sources of the scripts the event loop's connection sends (`loop_conn.rs`), which
/// it loads with SCRIPT LOAD itself when a server lost its script cache.
pub static ADD_JOBS_SOURCE: LazyLock<String> =
    LazyLock::new(|| script_source(include_str!("lua/add_jobs.lua")));
pub static ADD_FLOW_SOURCE: LazyLock<String> =
    LazyLock::new(|| script_source(include_str!("lua/add_flow.lua")));
/// Built from the sources above, so a script and what SCRIPT LOAD sends cannot differ.
pub static ADD_JOBS: LazyLock<Script> = LazyLock::new(|| Script::new(&ADD_JOBS_SOURCE));
pub static ADD_FLOW: LazyLock<Script> = LazyLock::new(|| Script::new(&ADD_FLOW_SOURCE));
/// Every script as (its static, its name: the file's name, and its function's in the
/// library), from one list so that the EVAL scripts and the library cannot differ.
macro_rules! lua_scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            pub static $name: LazyLock<Script> = LazyLock::new(|| {
                Script::new(&script_source(include_str!(concat!("lua/", $file, ".lua"))))
            });
        )*
        /// (name, script body) of every script but add_jobs and add_flow (listed in
        /// [`all_scripts`]).
        const SCRIPT_BODIES: &[(&str, &str)] = &[
            $(($file, include_str!(concat!("lua/", $file, ".lua")))),*
        ];
        fn scripts_by_name() -> Vec<(&'static str, &'static Script)> {
            vec![$(($file, &*$name)),*]
        }
    };
}

lua_scripts! {
    GET_JOB => "get_job",
    GET_JOBS => "get_jobs",
    GET_STATS => "get_stats",
    REMOVE_JOB => "remove_job",
    DRAIN => "drain",
    CLEAR => "clear",
    SET_PAUSED => "set_paused",
    HEALTH => "health",
    FETCH => "fetch",
    ACK => "ack",
    EXTEND_LOCKS => "extend_locks",
    STALLED => "stalled",
    RELEASE => "release",
    UPDATE_JOB => "update_job",
    RETRY_JOBS => "retry_jobs",
    UPSERT_SCHEDULE => "upsert_schedule",
    CLAIM_SCHEDULE => "claim_schedule",
    NEXT_SCHEDULE => "next_schedule",
    LIST_SCHEDULES => "list_schedules",
    UNSCHEDULE => "unschedule",
    SET_CONCURRENCY => "set_concurrency",
    SET_GROUP_LIMIT => "set_group_limit",
    SET_GROUP_PAUSED => "set_group_paused",
    GET_GROUP_STATS => "get_group_stats",
    UPGRADE_LAYOUT => "upgrade_layout",
    WAKE_PARTITIONS => "wake_partitions",
    TAKE_RATE => "take_rate",
    TAKE_SLOTS => "take_slots",
    GET_WORKERS => "get_workers",
    FLOW_LINK => "flow_link",
    FLOW_CHILD_DONE => "flow_child_done",
    FLOW_OUTBOX_DONE => "flow_outbox_done",
    GET_DEPS => "get_deps",
    FIND_JOBS => "find_jobs",
}

// ---------------------------------------------------------------------------------------
// The Redis Function library (Redis >= 7.0). Every EVALSHA above runs its script's
// prelude again: the table K (a concatenation per key) and a closure per helper, some
// 40,000 Redis instructions per fetch call. The library defines the helpers once, when it
// is loaded, and keeps K per key base; each function only resets the per-call state of
// lib.lua (`resetCallState`) and runs its script's body. The same calls go as `FCALL
// <function> <numkeys> <keys...> <args...>` (the keys and arguments of the EVALSHA).
//
// The library's name and its functions' names carry a hash of its source, so two releases
// of jobqueue on one server each load and call their own (`FUNCTION LOAD REPLACE` of the
// same name is a no-op for the same source). Old releases' libraries stay until deleted.

/// The scripts in the library: add_jobs, add_flow and the others.
fn all_scripts() -> Vec<(&'static str, &'static str, &'static Script)> {
    let mut all = vec![
        ("add_jobs", include_str!("lua/add_jobs.lua"), &*ADD_JOBS),
        ("add_flow", include_str!("lua/add_flow.lua"), &*ADD_FLOW),
    ];
    for ((name, body), (_, script)) in SCRIPT_BODIES.iter().zip(scripts_by_name()) {
        all.push((name, body, script));
    }
    all
}

/// The scripts that write nothing. A function without flags counts as a write: Redis
/// refuses it up front when over `maxmemory`, where an EVAL without flags is refused only
/// at its first write; flagged `no-writes`, the readers keep answering then, as by EVAL.
const READ_ONLY: [&str; 9] = [
    "find_jobs",
    "get_deps",
    "get_job",
    "get_jobs",
    "get_stats",
    "health",
    "list_schedules",
    "get_group_stats",
    "get_workers",
];

/// How many key tables the library keeps (one per queue it served) before it starts over.
const KEY_TABLES_MAX: usize = 1000;

/// The library's source without its first line, and the hash that names it.
fn library_body() -> String {
    let mut lua = String::from("local BASE, K\n");
    lua.push_str(LIB);
    // K per key base, built on a queue's first call; KEYS[1] is the meta key, itself made
    // from the base (keys.rs), so one base always has the same table.
    lua.push_str("\nlocal keyTables, keyTableCount = {}, 0\n");
    lua.push_str("local function enter(keys, argv)\n  BASE = argv[1]\n");
    lua.push_str("  local k = keyTables[BASE]\n  if not k then\n");
    writeln!(
        lua,
        "    if keyTableCount >= {KEY_TABLES_MAX} then keyTables, keyTableCount = {{}}, 0 end"
    )
    .expect("writing to a String");
    lua.push_str("    k = {\n");
    for (name, suffix) in QUEUE_KEYS {
        if name == "meta" {
            lua.push_str("      meta = keys[1],\n");
        } else {
            writeln!(lua, "      {name} = BASE .. '{suffix}',").expect("writing to a String");
        }
    }
    lua.push_str("    }\n    keyTables[BASE], keyTableCount = k, keyTableCount + 1\n  end\n");
    lua.push_str("  K = k\n  resetCallState()\nend\n");
    lua
}

struct Library {
    name: String,
    source: String,
    /// The SHA1 of each script's EVAL source -> its function's name.
    functions: std::collections::HashMap<String, String>,
}

static LIBRARY: LazyLock<Library> = LazyLock::new(|| {
    let mut body = library_body();
    let mut functions = std::collections::HashMap::new();
    let mut callbacks = String::new();
    for (name, script_body, script) in all_scripts() {
        writeln!(
            callbacks,
            "redis.register_function{{function_name = '@{name}', callback = function(KEYS, ARGV)"
        )
        .expect("writing to a String");
        callbacks.push_str("enter(KEYS, ARGV)\n");
        callbacks.push_str(script_body);
        callbacks.push_str("\nend");
        if READ_ONLY.contains(&name) {
            callbacks.push_str(", flags = {'no-writes'}");
        }
        callbacks.push_str("}\n");
        functions.insert(script.get_hash().to_string(), name.to_string());
    }
    body.push_str(&callbacks);
    let hash = format!("{:016x}", fnv1a(body.as_bytes()));
    let prefix = format!("jq_{hash}_");
    let body = body.replace("function_name = '@", &format!("function_name = '{prefix}"));
    for name in functions.values_mut() {
        *name = format!("{prefix}{name}");
    }
    let name = format!("jobqueue_{hash}");
    Library {
        source: format!("#!lua name={name}\n{body}"),
        name,
        functions,
    }
});

/// 64-bit FNV-1a: a hash of the library's source that names it, the same in every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The library's source, for `FUNCTION LOAD REPLACE`.
pub fn library_source() -> &'static str {
    &LIBRARY.source
}

/// The library's name (`jobqueue_<hash>`).
pub fn library_name() -> &'static str {
    &LIBRARY.name
}

/// `FUNCTION LOAD REPLACE` of the library.
pub fn load_library_cmd() -> Cmd {
    let mut cmd = redis::cmd("FUNCTION");
    cmd.arg("LOAD").arg("REPLACE").arg(library_source());
    cmd
}

/// The `FCALL` that does what the `EVALSHA` (or `EVAL`) `eval` does: the same keys and
/// arguments, to the function of the same script. None for a script not in the library.
pub fn fcall_of(eval: &Cmd) -> Option<Cmd> {
    let mut args = eval.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let _command = args.next()??;
    let sha = std::str::from_utf8(args.next()??).ok()?;
    let function = LIBRARY.functions.get(sha)?;
    let mut cmd = redis::cmd("FCALL");
    cmd.arg(function.as_str());
    for arg in args {
        cmd.arg(arg?);
    }
    Some(cmd)
}

/// The packed `FCALL` request `request` as the packed `EVALSHA` of `script` with the same
/// keys and arguments (they follow the function's name in both); None when `request` is
/// not an FCALL.
pub fn fcall_request_as_evalsha(request: &[u8], script: &Script) -> Option<Vec<u8>> {
    // *<n>\r\n $5\r\nFCALL\r\n $<len>\r\n<name>\r\n <the rest>
    let line_end = |from: usize| {
        request[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|at| from + at + 2)
    };
    let count_end = line_end(0)?;
    let command = b"$5\r\nFCALL\r\n";
    if !request[count_end..].starts_with(command) {
        return None;
    }
    let name_len_end = line_end(count_end + command.len())?;
    let name_end = line_end(name_len_end)?;
    let mut eval = request[..count_end].to_vec();
    eval.extend_from_slice(b"$7\r\nEVALSHA\r\n$40\r\n");
    eval.extend_from_slice(script.get_hash().as_bytes());
    eval.extend_from_slice(b"\r\n");
    eval.extend_from_slice(&request[name_end..]);
    Some(eval)
}

/// Whether `err` says the server lacks the library's function (never loaded there, a
/// `FUNCTION FLUSH`, a failover to a server without it): load it and call again.
pub fn is_function_missing(err: &redis::RedisError) -> bool {
    err.code() == Some("ERR")
        && err
            .detail()
            .is_some_and(|d| d.starts_with("Function not found"))
}

/// Whether `err` (the reply to FUNCTION LOAD) says the server has no functions (Redis <
/// 7.0): the scripts then go by EVALSHA.
pub fn lacks_functions(err: &redis::RedisError) -> bool {
    err.detail().is_some_and(|d| {
        let d = d.to_ascii_lowercase();
        d.contains("unknown command") || d.contains("unknown subcommand")
    }) || err
        .code()
        .is_some_and(|c| c.eq_ignore_ascii_case("unknown"))
}

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

    /// The FCALL of `inv`, for a server that has the library.
    fn fcall(inv: &redis::ScriptInvocation<'_>) -> Cmd {
        let mut pipe = redis::pipe();
        pipe.invoke_script(inv);
        let fcall = fcall_of(pipe.cmd_iter().next().unwrap()).expect("a script of the library");
        fcall
    }

    #[test]
    fn the_library_loads_with_a_function_per_script() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let name: String = load_library_cmd().query(&mut con).unwrap();
        assert_eq!(name, library_name());
        // Loading it again (another process of this release) changes nothing.
        let again: String = load_library_cmd().query(&mut con).unwrap();
        assert_eq!(again, library_name());
        let listed: Vec<Vec<redis::Value>> = redis::cmd("FUNCTION")
            .arg("LIST")
            .arg("LIBRARYNAME")
            .arg(library_name())
            .query(&mut con)
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(LIBRARY.functions.len(), all_scripts().len());
        for (_, _, script) in all_scripts() {
            let eval = evalsha(script, &QueueKeys::new("jq", "x"), true);
            assert_eq!(eval.args_iter().count(), 5, "FCALL name 1 key base");
        }
    }

    #[test]
    fn readers_answer_over_maxmemory_as_by_eval() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let _: String = load_library_cmd().query(&mut con).unwrap();
        let keys = QueueKeys::new("jq", "oom");
        let _: Added = fcall(&add(&keys, &[("", "a", 0, 0)]))
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(1)
            .query(&mut con)
            .unwrap();
        let stats: Vec<i64> = fcall(&invocation(&GET_STATS, &keys))
            .query(&mut con)
            .unwrap();
        assert!(!stats.is_empty());
        let refused: redis::RedisResult<Added> =
            fcall(&add(&keys, &[("", "b", 0, 0)])).query(&mut con);
        assert_eq!(refused.unwrap_err().code(), Some("OOM"));
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(0)
            .query(&mut con)
            .unwrap();
    }

    #[test]
    fn a_packed_fcall_becomes_the_packed_evalsha_of_the_same_call() {
        let keys = QueueKeys::new("jq", "packed");
        let mut fcall = evalsha(&ADD_JOBS, &keys, true);
        let mut eval = evalsha(&ADD_JOBS, &keys, false);
        for cmd in [&mut fcall, &mut eval] {
            cmd.arg("x\r\ny").arg(42);
        }
        let converted = fcall_request_as_evalsha(&fcall.get_packed_command(), &ADD_JOBS).unwrap();
        assert_eq!(converted, eval.get_packed_command());
        assert!(fcall_request_as_evalsha(&eval.get_packed_command(), &ADD_JOBS).is_none());
    }

    #[test]
    fn every_per_call_local_of_lib_is_reset_by_the_library() {
        let reset = statements(LIB)
            .into_iter()
            .find(|(names, _)| names == &["resetCallState"])
            .expect("resetCallState")
            .1;
        let reset_words: HashSet<&str> = words(&reset).collect();
        for (names, text) in statements(LIB) {
            if text.starts_with("local function") {
                continue;
            }
            for name in names {
                // UPPER_CASE locals are constants; the others live for one call.
                if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    assert!(reset_words.contains(name), "{name} is not reset per call");
                }
            }
        }
    }

    #[test]
    fn the_library_keeps_no_state_from_one_call_to_the_next() {
        let redis = TestRedis::start();
        let mut con = redis.client().get_connection().unwrap();
        let _: String = load_library_cmd().query(&mut con).unwrap();
        let keys = QueueKeys::new("jq", "fresh");
        let with_opts = |keys: &QueueKeys| {
            let mut inv = invocation(&ADD_JOBS, keys);
            inv.arg(LAYOUT_VERSION).arg(60_000).arg(1);
            inv.arg("a")
                .arg("x")
                .arg("{}")
                .arg("{\"o\":1}")
                .arg(0)
                .arg(0)
                .arg(1)
                .arg("");
            inv
        };
        let _: Added = fcall(&with_opts(&keys)).query(&mut con).unwrap();
        // The options cache of the first call must not survive it: with the hashes gone,
        // the second call stores the text again.
        let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
        let _: Added = fcall(&with_opts(&keys)).query(&mut con).unwrap();
        let mut get = invocation(&GET_JOB, &keys);
        get.arg("a");
        let (fields, _, _): (Vec<String>, Vec<String>, i64) = fcall(&get).query(&mut con).unwrap();
        let opts = fields.iter().position(|f| f == "opts").unwrap();
        assert_eq!(fields[opts + 1], "{\"o\":1}");
        // A call that raises halfway leaves its events unwritten; the next call must not
        // write them. With the wait list a string, add_jobs raises at its RPUSH, after
        // recording the jobs' events.
        let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
        let _: () = redis::cmd("SET")
            .arg(&keys.wait)
            .arg("x")
            .query(&mut con)
            .unwrap();
        let mut bad = invocation(&ADD_JOBS, &keys);
        bad.arg(LAYOUT_VERSION).arg(60_000).arg(2);
        for id in ["b", "c"] {
            let job = [id, "x", "{}", "{}", "0", "0", "1", ""];
            bad.arg(&job[..]);
        }
        let failed: redis::RedisResult<Added> = fcall(&bad).query(&mut con);
        assert!(failed.is_err());
        let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
        let _: Added = fcall(&with_opts(&keys)).query(&mut con).unwrap();
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(format!("{}events", keys.base()))
            .arg("-")
            .arg("+")
            .query(&mut con)
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert!(!entries[0].1[0].1.contains("\u{1f}b\u{1f}"), "{entries:?}");
    }

    #[test]
    fn a_server_that_lost_the_library_gets_it_again() {
        let redis = TestRedis::start();
        let client = redis.client();
        let keys = QueueKeys::new("jq", "flushed");
        crate::runtime::handle().block_on(async {
            let single = client.get_multiplexed_async_connection().await.unwrap();
            let conn = crate::cluster::Conn::Single(single);
            let patience = std::time::Duration::from_secs(1);
            // Never loaded here: "Function not found", then the library and the call.
            let (_, _, ids, _): Added =
                crate::cluster::invoke(&conn, &add(&keys, &[("", "a", 0, 0)]), patience, true)
                    .await
                    .unwrap();
            assert_eq!(ids, ["1"]);
            let _: () = redis::cmd("FUNCTION")
                .arg("FLUSH")
                .query_async(&mut conn.clone())
                .await
                .unwrap();
            let (_, _, ids, _): Added =
                crate::cluster::invoke(&conn, &add(&keys, &[("", "b", 0, 0)]), patience, true)
                    .await
                    .unwrap();
            assert_eq!(ids, ["2"]);
        });
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
