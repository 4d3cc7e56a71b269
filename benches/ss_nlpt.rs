//! Criterion benchmark: the saved `ss-nlpt` query, planned and run in-process, with 1,000
//! listening sockets of this process on 127.0.0.1 (plus whatever the machine has).

use std::net::TcpListener;

use criterion::{Criterion, criterion_group, criterion_main};
use kql_engine::Engine;

const LISTENERS: usize = 1_000;
const SS_NLPT: &str = include_str!("../queries/ss-nlpt.sql");

fn ss_nlpt(c: &mut Criterion) {
    let listeners: Vec<TcpListener> = (0..LISTENERS)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a benchmark listener"))
        .collect();
    let engine = kql_tables::engine(&kql_tables::target::Target::host_sources()).expect("engine");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rows = |engine: &Engine| {
        let (_, batches) = runtime.block_on(engine.run(SS_NLPT)).expect("ss-nlpt runs");
        batches.iter().map(|b| b.num_rows()).sum::<usize>()
    };
    assert!(rows(&engine) >= LISTENERS, "every benchmark listener is listed");
    c.bench_function("ss-nlpt, 1000 listeners", |b| b.iter(|| rows(&engine)));
    drop(listeners);
}

criterion_group!(benches, ss_nlpt);
criterion_main!(benches);
