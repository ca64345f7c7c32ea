//! Appends to a partition log until killed, printing one line per acknowledged batch.
//!
//! Usage: `crash-appender DIR CYCLE`. Four tasks each append `deterministic_batch(CYCLE,
//! task, seq)` and flush (acks=all); after each flush resolves they print
//! `ack <base_offset> <cycle> <task> <seq>` and flush stdout, so every printed line is a
//! batch the log promised is durable.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use bytes::BytesMut;
use corelog_engine::{AppendOptions, PartitionLog, TailCache};
use corelog_tests::{crash_config, deterministic_batch, run_on_executor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .expect("usage: crash-appender DIR CYCLE")
        .clone();
    let cycle: u32 = args
        .get(2)
        .expect("CYCLE")
        .parse()
        .expect("CYCLE is a number");
    run_on_executor(move || async move {
        let cache = Rc::new(RefCell::new(TailCache::new(8 << 20)));
        let log = Rc::new(
            PartitionLog::open(&dir, crash_config(), cache)
                .await
                .expect("open log"),
        );
        println!("ready {}", log.log_end_offset());
        std::io::stdout().flush().unwrap();
        let mut tasks = Vec::new();
        for task in 0..4u32 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for seq in 0.. {
                    let bytes = deterministic_batch(cycle, task, seq);
                    let info = log
                        .append(BytesMut::from(&bytes[..]), AppendOptions::default())
                        .await
                        .expect("append");
                    log.flush().await.expect("flush");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {} {cycle} {task} {seq}", info.base_offset).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}
