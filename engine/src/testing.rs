//! Helpers for tests and tools that drive the engine from outside an executor.

use std::future::Future;

use glommio::{LocalExecutorBuilder, Placement};

/// Runs `f` on a fresh glommio executor (real io_uring) and returns its output.
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

/// Raises the open-file limit to its hard maximum, once. glommio 0.9 leaks about one
/// eventfd per executor it tears down (harmless for a broker, whose executors live as long
/// as the process), and test suites start many executors.
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

/// The seed of a randomised test: the number in the environment variable `var` (to
/// replay a failure), else a random one. The test prints it.
pub fn seed(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{var} is not a number: {s}")),
        Err(_) => random_u64(),
    }
}

/// The seeds of a test that runs several: the one in `one` when that variable is set,
/// else `many` (default `default`) consecutive seeds from a random first one.
pub fn seeds(one: &str, many: &str, default: u64) -> Vec<u64> {
    if std::env::var_os(one).is_some() {
        return vec![seed(one)];
    }
    let n = std::env::var(many)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let first = random_u64() >> 32;
    (first..first + n).collect()
}

/// A random number without a dependency: std's per-map random hash keys.
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}
