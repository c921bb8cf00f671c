//! Criterion benches of the native hot path: backoff math; a batch crossing the
//! Python/Rust boundary (job data encoded to JSON, fetched jobs turned into Python tuples);
//! and the fetch, ack and add scripts against a local redis-server, by batch size
//! (`cargo bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use _native::ack_args::{push_entries, AckEntry};
use _native::backoff::{Backoff, BackoffKind};
use _native::json::to_json;
use _native::keys::{QueueKeys, LAYOUT_VERSION};
use _native::scripts::{invocation, ACK, ADD_JOBS, FETCH};
use _native::test_redis::TestRedis;
use _native::worker::JobTuple;

fn backoff(c: &mut Criterion) {
    let exponential = Backoff {
        kind: BackoffKind::Exponential,
        delay: 1000,
        max_delay: Some(30_000),
        jitter: 0.2,
    };
    c.bench_function("backoff/exponential with jitter", |b| {
        b.iter(|| std::hint::black_box(exponential.delay(std::hint::black_box(4))))
    });
}

/// One batch each way across the boundary: the data of 1,000 jobs (`{"i": i, "s": "x" *
/// 100}`) encoded to JSON as `add_jobs` does, and 200 fetched jobs turned into the Python
/// tuples the worker delivers.
fn boundary(c: &mut Criterion) {
    Python::initialize();
    let mut group = c.benchmark_group("boundary");
    Python::attach(|py| {
        let payloads: Vec<Bound<'_, PyDict>> = (0..1000)
            .map(|i| {
                let d = PyDict::new(py);
                d.set_item("i", i).unwrap();
                d.set_item("s", "x".repeat(100)).unwrap();
                d
            })
            .collect();
        group.throughput(Throughput::Elements(payloads.len() as u64));
        group.bench_function("encode data/1000", |b| {
            b.iter(|| {
                for payload in &payloads {
                    std::hint::black_box(to_json(payload.as_any(), "data").unwrap());
                }
            })
        });
        let jobs: Vec<JobTuple> = (0..200)
            .map(|i| {
                (
                    i.to_string(),
                    "noop".to_string(),
                    format!(r#"{{"i":{i},"s":"{}"}}"#, "x".repeat(100)),
                    OPTS.to_string(),
                    1,
                    3,
                    None,
                    1_700_000_000_000,
                    1_700_000_000_001,
                    String::new(),
                    None,
                    (None, None),
                )
            })
            .collect();
        group.throughput(Throughput::Elements(jobs.len() as u64));
        group.bench_function("deliver jobs/200", |b| {
            b.iter(|| std::hint::black_box(jobs.clone().into_pyobject(py).unwrap()))
        });
    });
    group.finish();
}

const OPTS: &str =
    r#"{"attempts":3,"backoff":{"type":"fixed","delay":0},"remove_on_complete":{"count":0}}"#;

fn add(con: &mut redis::Connection, keys: &QueueKeys, n: usize) {
    let mut inv = invocation(&ADD_JOBS, keys);
    inv.arg(LAYOUT_VERSION).arg(60_000).arg(n);
    for i in 0..n {
        inv.arg("")
            .arg("noop")
            .arg(format!(r#"{{"i":{i},"s":"{}"}}"#, "x".repeat(100)))
            .arg(OPTS)
            .arg(0)
            .arg(0)
            .arg(3)
            .arg("");
    }
    let _: redis::Value = inv.invoke(con).expect("add_jobs");
}

/// One worker cycle for `batch` jobs: fetch them under locks, then complete them all.
fn fetch_and_ack(con: &mut redis::Connection, keys: &QueueKeys, batch: usize) {
    let mut fetch = invocation(&FETCH, keys);
    fetch.arg(batch).arg(30_000).arg("bench").arg(0).arg(0);
    let reply: Vec<redis::Value> = fetch.invoke(con).expect("fetch");
    let mut ack = invocation(&ACK, keys);
    // Flat: 4 values per job after a header of 7, the lock token last (fetch.lua).
    let text = |v: &redis::Value| -> String {
        redis::FromRedisValue::from_redis_value(v.clone()).expect("field")
    };
    let token = text(&reply[6]);
    let ids: Vec<String> = reply[7..]
        .chunks_exact(4)
        .map(|job| text(&job[0]))
        .collect();
    let entries: Vec<AckEntry<'_>> = ids
        .iter()
        .map(|id| AckEntry {
            id,
            token: &token,
            outcome: "completed",
            value: b"null",
            keep: (0, -1),
            name: "bench",
            attempts: 1,
            stacktrace: "",
            delay: 0,
        })
        .collect();
    push_entries(&mut ack, &entries);
    let _: Vec<i64> = ack.invoke(con).expect("ack");
}

fn scripts(c: &mut Criterion) {
    let redis = TestRedis::start();
    let mut con = redis.client().get_connection().expect("connect");
    let mut setup = redis.client().get_connection().expect("connect");
    let keys = QueueKeys::new("jq", "bench");
    let mut group = c.benchmark_group("fetch+ack");
    for batch in [1usize, 10, 50, 200] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_batched(
                || add(&mut setup, &keys, batch),
                |()| fetch_and_ack(&mut con, &keys, batch),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
    let mut group = c.benchmark_group("add_jobs");
    for batch in [1usize, 100, 1000] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| add(&mut con, &keys, batch))
        });
    }
    group.finish();
}

criterion_group!(benches, backoff, boundary, scripts);
criterion_main!(benches);
