//! Helpers for corelog's integration tests: deterministic batches that a checker can
//! regenerate, and a glommio runner.

use std::future::Future;

use corelog_engine::batch_builder::BatchBuilder;
use corelog_engine::LogConfig;
use glommio::{LocalExecutorBuilder, Placement};

/// The batch a writer identified by (`cycle`, `task`, `seq`) appends: its content is a
/// pure function of those numbers, so a checker can rebuild it byte for byte.
pub fn deterministic_batch(cycle: u32, task: u32, seq: u64) -> Vec<u8> {
    let mut h = (cycle as u64) << 48 ^ (task as u64) << 40 ^ seq;
    let mut next = || {
        // splitmix64: fixed, so the bytes never change between runs or versions.
        h = h.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    };
    let records = 1 + (next() % 8) as usize;
    let mut b = BatchBuilder::new(1_700_000_000_000 + seq as i64);
    for _ in 0..records {
        let len = (next() % 1500) as usize;
        let value: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let key = format!("{cycle}-{task}-{seq}");
        b.push(Some(key.as_bytes()), Some(&value), &[]);
    }
    b.build()
}

/// Runs `f` on a fresh glommio executor and returns its output.
pub fn run_on_executor<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    raise_fd_limit();
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move {
            let out = f().await;
            // glommio closes files dropped without close() on its next I/O cycle: give it
            // one before the executor ends, or their descriptors leak.
            glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
            out
        })
        .expect("start executor")
        .join()
        .expect("executor finished")
}

/// Log settings of the SIGKILL test (small segments and chunks, so kills land in rolls
/// and chunk boundaries too).
pub fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 10,
        write_chunk_bytes: 32 << 10,
        max_batch_bytes: 64 << 10,
        ..LogConfig::default()
    }
}

/// Raises the open-file limit to its hard maximum, once. glommio 0.9 leaks about one
/// eventfd per executor it tears down (harmless for a broker, whose executors live as long
/// as the process), and these tests start hundreds of executors.
pub fn raise_fd_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct we own.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    });
}
