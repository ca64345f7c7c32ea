//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use bytes::BytesMut;
use corelog_engine::batch_builder::BatchBuilder;
use corelog_engine::TailCache;
use glommio::{LocalExecutorBuilder, Placement};

/// Runs `f` on a fresh glommio executor (real io_uring) and returns its output.
pub fn run<F, Fut, T>(f: F) -> T
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

/// A cache that holds nothing, so every read goes to disk.
pub fn no_cache() -> Rc<RefCell<TailCache>> {
    Rc::new(RefCell::new(TailCache::new(0)))
}

/// A cache large enough for a test.
pub fn big_cache() -> Rc<RefCell<TailCache>> {
    Rc::new(RefCell::new(TailCache::new(64 << 20)))
}

/// A batch of `records` records with values of `value_bytes` bytes, deterministic in
/// `tag`, with timestamp `ts`.
pub fn batch(tag: u64, records: usize, value_bytes: usize, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(ts);
    for r in 0..records {
        let v: Vec<u8> = (0..value_bytes)
            .map(|i| (tag as usize * 31 + r * 7 + i) as u8)
            .collect();
        b.push(Some(&tag.to_be_bytes()), Some(&v), &[]);
    }
    BytesMut::from(&b.build()[..])
}

/// Splits concatenated stored batches into (base offset, bytes).
pub fn split(data: &[bytes::Bytes]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for chunk in data {
        let mut rest = &chunk[..];
        while let Some(b) = corelog_engine::batch::RecordBatch::from_prefix(rest) {
            out.push((b.base_offset() as u64, b.as_bytes().to_vec()));
            rest = &rest[b.len()..];
        }
        assert!(rest.is_empty(), "a read returned a partial batch");
    }
    out
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
