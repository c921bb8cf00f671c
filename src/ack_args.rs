//! The arguments of one `ack.lua` call, in the shape that costs Redis least: every value
//! passed becomes a Lua string, so a completed job sends 7 values, the retention policies
//! of the batch (nearly always one) go once, and only failures send their stack trace and
//! retry delay.

use crate::scripts::ScriptArgs;

/// One entry: (id, lock token, outcome, value, retention (keep count, keep age; -1: no
/// bound), job name, attempts made, stack trace, retry delay ms).
pub struct AckEntry<'a> {
    pub id: &'a str,
    pub token: &'a str,
    pub outcome: &'static str,
    pub value: &'a [u8],
    pub keep: (i64, i64),
    pub name: &'a str,
    pub attempts: u32,
    pub stacktrace: &'a str,
    pub delay: u64,
}

/// Push the entries (see `ack.lua`'s argument list): the count, the distinct retentions,
/// 7 values per entry, then the failures' details. The caller adds the groups' tail.
pub fn push_entries(call: &mut impl ScriptArgs, entries: &[AckEntry<'_>]) {
    let mut policies: Vec<(i64, i64)> = Vec::new();
    let policy_of: Vec<usize> = entries
        .iter()
        .map(|e| match policies.iter().position(|p| *p == e.keep) {
            Some(at) => at + 1,
            None => {
                policies.push(e.keep);
                policies.len()
            }
        })
        .collect();
    call.push(entries.len()).push(policies.len());
    for (count, age) in &policies {
        call.push(count).push(age);
    }
    for (entry, policy) in entries.iter().zip(&policy_of) {
        call.push(entry.id)
            .push(entry.token)
            .push(entry.outcome)
            .push(entry.value)
            .push(policy)
            .push(entry.name)
            .push(entry.attempts);
    }
    let failures: Vec<(usize, &AckEntry<'_>)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome != "completed")
        .collect();
    call.push(failures.len());
    for (index, entry) in failures {
        call.push(index + 1)
            .push(entry.stacktrace)
            .push(entry.delay);
    }
}
