//! `corelog bench pingpong`: the machine's floor for one request and its answer over TCP
//! on 127.0.0.1, the baseline of the one-record-per-request row. A client thread sends
//! `--request-bytes`, a server thread reads them and sends `--response-bytes` back, one
//! round trip at a time (TCP_NODELAY on both ends, as a Kafka client and the broker set
//! it). Two modes, each for `--duration` seconds:
//! - *blocking*: both threads sleep in `recv` until data arrives, so every round trip
//!   pays two wake-ups;
//! - *busy-poll*: both threads poll with non-blocking `recv` and never sleep, which is
//!   what `corelog bench --busy-poll-us` does on the client side.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Flags of `corelog bench pingpong`.
#[derive(Debug, Clone, Args)]
pub struct PingPongArgs {
    /// Seconds per mode.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Bytes of each request (a one-record produce of 100 bytes is about 170).
    #[arg(long, default_value_t = 170)]
    pub request_bytes: usize,
    /// Bytes of each answer (a one-partition produce response is about 60).
    #[arg(long, default_value_t = 60)]
    pub response_bytes: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Round-trip percentiles of one mode, in microseconds.
#[derive(Debug, Serialize)]
pub struct RoundTrips {
    /// Round trips measured.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p99_9_us: f64,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct PingPongReport {
    /// Both ends sleep in `recv`.
    pub blocking: RoundTrips,
    /// Both ends poll without sleeping.
    pub busy_poll: RoundTrips,
    /// Bytes per request.
    pub request_bytes: usize,
    /// Bytes per answer.
    pub response_bytes: usize,
}

/// Measures both modes.
pub fn run(args: &PingPongArgs) -> Result<PingPongReport, String> {
    if !args.duration.is_finite()
        || args.duration <= 0.0
        || args.request_bytes == 0
        || args.response_bytes == 0
    {
        return Err("--duration, --request-bytes and --response-bytes must be positive".into());
    }
    let duration = Duration::from_secs_f64(args.duration);
    Ok(PingPongReport {
        blocking: measure(args, duration, false).map_err(|e| format!("blocking: {e}"))?,
        busy_poll: measure(args, duration, true).map_err(|e| format!("busy-poll: {e}"))?,
        request_bytes: args.request_bytes,
        response_bytes: args.response_bytes,
    })
}

/// Reads exactly `buf.len()` bytes, sleeping in `recv` or polling.
fn read_exact(s: &mut TcpStream, buf: &mut [u8], poll: bool) -> std::io::Result<()> {
    if !poll {
        return s.read_exact(buf);
    }
    let mut at = 0;
    while at < buf.len() {
        match s.read(&mut buf[at..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn measure(args: &PingPongArgs, duration: Duration, poll: bool) -> std::io::Result<RoundTrips> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (req, resp) = (args.request_bytes, args.response_bytes);
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(poll)?;
        let (mut inbox, answer) = (vec![0u8; req], vec![0x5au8; resp]);
        loop {
            match read_exact(&mut s, &mut inbox, poll) {
                Ok(()) => s.write_all(&answer)?,
                // The client is done.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_nonblocking(poll)?;
    let (request, mut inbox) = (vec![0xa5u8; req], vec![0u8; resp]);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (start, warmup) = (Instant::now(), duration / 10);
    while start.elapsed() < duration + warmup {
        let t = Instant::now();
        c.write_all(&request)?;
        read_exact(&mut c, &mut inbox, poll)?;
        if start.elapsed() >= warmup {
            hist.saturating_record(t.elapsed().as_nanos() as u64);
        }
    }
    drop(c);
    server
        .join()
        .map_err(|_| std::io::Error::other("the server thread panicked"))??;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(RoundTrips {
        count: hist.len(),
        p50_us: us(0.5),
        p99_us: us(0.99),
        p99_9_us: us(0.999),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_measure_round_trips() {
        let r = run(&PingPongArgs {
            duration: 0.2,
            request_bytes: 170,
            response_bytes: 60,
            json: None,
        })
        .unwrap();
        for m in [&r.blocking, &r.busy_poll] {
            assert!(m.count > 0, "{r:?}");
            assert!(m.p50_us > 0.0 && m.p50_us <= m.p99_us && m.p99_us <= m.p99_9_us);
        }
        let bad = PingPongArgs {
            duration: 1.0,
            request_bytes: 0,
            response_bytes: 1,
            json: None,
        };
        assert!(run(&bad).is_err());
    }
}
