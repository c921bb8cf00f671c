//! The Lua scripts, one file each, embedded at compile time. `redis::Script` runs them by
//! EVALSHA and loads a script again when the server answers NOSCRIPT.

use std::sync::LazyLock;

use redis::Script;

macro_rules! lua_script {
    ($name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
    };
}

lua_script!(ADD_JOBS, "add_jobs.lua");
lua_script!(GET_JOB, "get_job.lua");
lua_script!(GET_JOBS, "get_jobs.lua");
lua_script!(GET_STATS, "get_stats.lua");
lua_script!(REMOVE_JOB, "remove_job.lua");
lua_script!(DRAIN, "drain.lua");
lua_script!(CLEAR, "clear.lua");
lua_script!(SET_PAUSED, "set_paused.lua");
lua_script!(HEALTH, "health.lua");
