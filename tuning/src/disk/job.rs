//! One measured point: `qd` tasks each keeping one operation in flight on a file, until
//! a time or byte limit.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::DmaFile;

use super::{KIB, MIB};
use crate::figures::fmt_bytes;

/// A DMA buffer full of pseudo-random bytes, so devices that compress or deduplicate
/// (some SSDs, thin-provisioned volumes) see realistic data rather than zeros.
pub(super) fn filled_buffer(file: &DmaFile, bytes: usize, seed: u64) -> glommio::io::DmaBuffer {
    let mut buf = file.alloc_dma_buffer(bytes);
    let mut rng = XorShift::new(seed);
    for chunk in buf.as_bytes_mut().chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    buf
}

/// xorshift64: a fixed-seed position and data generator (quality is not an issue here).
#[derive(Debug, Clone, Copy)]
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Write,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Sequential,
    Random,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Limit {
    /// Stop issuing once this much time has passed (every worker completes at least one
    /// operation).
    Time(Duration),
    /// Issue exactly enough operations to cover this many bytes.
    Bytes(u64),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Job {
    pub(super) dir: Dir,
    pub(super) access: Access,
    pub(super) block: usize,
    pub(super) qd: usize,
    /// Bytes of the file the job's positions fall in.
    pub(super) span: u64,
    /// First position of a sequential job.
    pub(super) start: u64,
}

impl Job {
    pub(super) fn seq_write(block: usize, qd: usize, span: u64, start: u64) -> Job {
        Job {
            dir: Dir::Write,
            access: Access::Sequential,
            block,
            qd,
            span,
            start,
        }
    }

    pub(super) fn random(dir: Dir, qd: usize, span: u64) -> Job {
        Job {
            dir,
            access: Access::Random,
            block: 4 * KIB,
            qd,
            span,
            start: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct JobResult {
    pub(super) ops: u64,
    pub(super) bytes: u64,
    pub(super) elapsed: Duration,
    /// CPU time (user + system) of the executor thread during the job: submitting and
    /// completing the I/O.
    pub(super) cpu: Duration,
    /// Where the next sequential job should start.
    pub(super) next_pos: u64,
}

impl JobResult {
    pub(super) fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    pub(super) fn iops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Executor CPU per MiB moved, in microseconds.
    pub(super) fn cpu_us_per_mib(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / (self.bytes as f64 / MIB as f64).max(1e-9)
    }
}

/// CPU time (user + system) this thread has used.
pub(super) fn thread_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the rusage we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Hands out the positions of a job to its workers.
#[derive(Debug)]
pub(super) struct Cursor {
    pub(super) access: Access,
    pub(super) block: u64,
    /// Blocks of `block` bytes in the span.
    pub(super) blocks: u64,
    pub(super) next_block: Cell<u64>,
    pub(super) remaining_ops: Cell<Option<u64>>,
    pub(super) rng: Cell<XorShift>,
}

impl Cursor {
    pub(super) fn next(&self) -> Option<u64> {
        if let Some(left) = self.remaining_ops.get() {
            if left == 0 {
                return None;
            }
            self.remaining_ops.set(Some(left - 1));
        }
        let b = match self.access {
            Access::Sequential => {
                let b = self.next_block.get();
                self.next_block.set((b + 1) % self.blocks);
                b
            }
            Access::Random => {
                let mut rng = self.rng.get();
                let b = rng.next() % self.blocks;
                self.rng.set(rng);
                b
            }
        };
        Some(b * self.block)
    }
}

/// Runs one point: `job.qd` tasks, each keeping one operation in flight, until `limit`.
pub(super) async fn run_job(
    file: &Rc<DmaFile>,
    job: Job,
    limit: Limit,
) -> Result<JobResult, String> {
    let block = job.block as u64;
    let blocks = job.span / block;
    if blocks == 0 {
        return Err(format!(
            "scratch file of {} is smaller than a {} block",
            fmt_bytes(job.span),
            fmt_bytes(block)
        ));
    }
    let cursor = Rc::new(Cursor {
        access: job.access,
        block,
        blocks,
        next_block: Cell::new(job.start / block % blocks),
        remaining_ops: Cell::new(match limit {
            Limit::Bytes(b) => Some(b.div_ceil(block)),
            Limit::Time(_) => None,
        }),
        rng: Cell::new(XorShift::new(job.qd as u64 * 7919 + block)),
    });
    // The write buffers are allocated and filled before the clock starts: at 4 MiB x 8
    // that is 32 MiB of page faults and filling, which is not the device's time.
    let bufs: Vec<_> = (0..job.qd)
        .map(|worker| {
            (job.dir == Dir::Write)
                .then(|| Rc::new(filled_buffer(file, job.block, 100 + worker as u64)))
        })
        .collect();
    let started = Instant::now();
    let cpu_before = thread_cpu();
    let deadline = match limit {
        Limit::Time(d) => Some(started + d),
        Limit::Bytes(_) => None,
    };
    let mut tasks = Vec::with_capacity(job.qd);
    for buf in bufs {
        let (file, cursor) = (file.clone(), cursor.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut ops = 0u64;
            while let Some(pos) = cursor.next() {
                let done = match &buf {
                    Some(b) => file.write_rc_at(b.clone(), pos).await,
                    None => file.read_at_aligned(pos, job.block).await.map(|r| r.len()),
                };
                let n = done.map_err(|e| format!("{:?} at {pos}: {e}", job.dir))?;
                if n != job.block {
                    return Err(format!(
                        "short {:?} at {pos}: {n} of {} bytes",
                        job.dir, job.block
                    ));
                }
                ops += 1;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
            Ok::<u64, String>(ops)
        }));
    }
    let mut ops = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(n) => ops += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu_before);
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(JobResult {
        ops,
        bytes: ops * block,
        elapsed,
        cpu,
        next_pos: cursor.next_block.get() * block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_cursor_wraps_and_random_stays_in_span() {
        let c = Cursor {
            access: Access::Sequential,
            block: 4096,
            blocks: 3,
            next_block: Cell::new(2),
            remaining_ops: Cell::new(Some(4)),
            rng: Cell::new(XorShift::new(1)),
        };
        let got: Vec<u64> = std::iter::from_fn(|| c.next()).collect();
        assert_eq!(got, [8192, 0, 4096, 8192]);
        let r = Cursor {
            access: Access::Random,
            block: 4096,
            blocks: 10,
            next_block: Cell::new(0),
            remaining_ops: Cell::new(Some(1000)),
            rng: Cell::new(XorShift::new(7)),
        };
        let got: Vec<u64> = std::iter::from_fn(|| r.next()).collect();
        assert_eq!(got.len(), 1000);
        assert!(got.iter().all(|&p| p % 4096 == 0 && p < 40960));
        assert!(got.iter().collect::<std::collections::HashSet<_>>().len() == 10);
    }
}
