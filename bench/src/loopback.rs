//! `corelog bench loopback`: the machine's own ceiling for moving bytes over TCP on
//! 127.0.0.1, the floor under every broker figure that crosses a socket (fan-out above
//! all). One thread writes 1 MiB buffers as fast as it can, another reads them into a
//! 1 MiB buffer and drops them; nothing else runs. Blocking std sockets keep it to the
//! two copies (user to kernel, kernel to user) and the TCP work any broker also pays.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

/// Flags of `corelog bench loopback`.
#[derive(Debug, Clone, Args)]
pub struct LoopbackArgs {
    /// Seconds to send for.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Bytes per write and per read.
    #[arg(long, default_value_t = 1 << 20)]
    pub buffer_bytes: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct LoopbackReport {
    /// Bytes received per second, in GB/s (10^9).
    pub gb_s: f64,
    /// Bytes received.
    pub bytes: u64,
    /// Seconds from the first byte read to the end of the stream.
    pub seconds: f64,
    /// Bytes per write and read.
    pub buffer_bytes: usize,
}

/// Runs the sender and receiver threads and reports the receiver's rate.
pub fn run(args: &LoopbackArgs) -> Result<LoopbackReport, String> {
    if !args.duration.is_finite() || args.duration <= 0.0 || args.buffer_bytes == 0 {
        return Err("--duration and --buffer-bytes must be positive".into());
    }
    let io = |e: std::io::Error| format!("loopback socket: {e}");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let (duration, size) = (Duration::from_secs_f64(args.duration), args.buffer_bytes);
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let buf = vec![0x5au8; size];
        let end = Instant::now() + duration;
        while Instant::now() < end {
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let (mut conn, _) = listener.accept().map_err(io)?;
    let mut buf = vec![0u8; size];
    let mut bytes = 0u64;
    let mut start = None;
    loop {
        let n = conn.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        start.get_or_insert_with(Instant::now);
        bytes += n as u64;
    }
    let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    sender
        .join()
        .map_err(|_| "the sender thread panicked".to_string())?
        .map_err(io)?;
    Ok(LoopbackReport {
        gb_s: if seconds > 0.0 {
            bytes as f64 / seconds / 1e9
        } else {
            0.0
        },
        bytes,
        seconds,
        buffer_bytes: size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_sent_is_counted() {
        let r = run(&LoopbackArgs {
            duration: 0.2,
            buffer_bytes: 64 << 10,
            json: None,
        })
        .unwrap();
        assert!(r.bytes > 0 && r.bytes.is_multiple_of(64 << 10), "{r:?}");
        assert!(r.gb_s > 0.0);
        assert!(run(&LoopbackArgs {
            duration: 0.0,
            buffer_bytes: 1,
            json: None
        })
        .is_err());
    }
}
