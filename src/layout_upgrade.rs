//! A queue written by an older key layout is brought to this one before a queue's main
//! connection serves (so producers, workers and admin calls of this release all see
//! layout 2; `upgrade_layout.lua` says what happens to each job, docs/redis-layout.md how
//! a fleet upgrades). On a queue already at layout 2 this costs one script call per new
//! connection.

use std::time::Duration;

use crate::cluster::{self, Conn};
use crate::errors::JqError;
use crate::keys::QueueKeys;
use crate::scripts;

/// Jobs converted per script call: Redis serves other clients between calls.
const UPGRADE_BATCH: usize = 1000;

/// Convert the queue of `keys` to this layout, if it is of an older one; returns how many
/// jobs were converted. On a cluster, refusals (a migrating slot) are retried for up to
/// `patience` per call, as for every script call.
pub async fn upgrade(
    conn: &Conn,
    keys: &QueueKeys,
    patience: Duration,
    functions: bool,
) -> Result<u64, JqError> {
    let mut converted = 0;
    loop {
        let mut inv = scripts::invocation(&scripts::UPGRADE_LAYOUT, keys);
        inv.arg(UPGRADE_BATCH);
        let (count, done): (u64, i64) = cluster::invoke(conn, &inv, patience, functions).await?;
        converted += count;
        if done == 1 {
            return Ok(converted);
        }
    }
}
