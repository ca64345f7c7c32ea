//! The embedded broker: this binary's own `serve`, started as a child process on a free
//! loopback port with its data in a temporary directory, so `corelog bench e2e` works on
//! a fresh machine and the broker's CPU time can be read from /proc apart from the
//! client's.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running embedded broker; stopped (SIGTERM, then SIGKILL after 60 s) when dropped.
#[derive(Debug)]
pub struct EmbeddedBroker {
    child: Option<Child>,
    addr: String,
    data_dir: PathBuf,
    args: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

impl EmbeddedBroker {
    /// Starts a broker with `shards` (its default when `None`) and `extra` serve
    /// arguments, in `data_dir` or a new temporary directory.
    pub fn start(
        shards: Option<usize>,
        data_dir: Option<&Path>,
        extra: &[String],
    ) -> Result<EmbeddedBroker, String> {
        let (temp, dir) = match data_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("corelog-bench-")
                    .tempdir_in(std::env::temp_dir())
                    .map_err(|e| format!("creating a temporary data directory: {e}"))?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            addr.clone(),
            "--data-dir".into(),
            dir.display().to_string(),
        ];
        if let Some(s) = shards {
            args.extend(["--shards".to_string(), s.to_string()]);
        }
        args.extend(extra.iter().cloned());
        let mut b = EmbeddedBroker {
            child: None,
            addr,
            data_dir: dir,
            args,
            _temp: temp,
        };
        b.spawn()?;
        Ok(b)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
        let child = Command::new(exe)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the embedded broker: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    /// host:port it listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops it: SIGTERM (a clean shutdown) or, with `kill`, SIGKILL (a crash).
    pub fn stop(&mut self, kill: bool) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sig = if kill { libc::SIGKILL } else { libc::SIGTERM };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if kill || status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!("the embedded broker exited with {status}"))
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("the embedded broker did not stop within 60 s".into());
                }
            }
        }
    }

    /// Stops it (see [`stop`](Self::stop)) and starts it again on the same directory and
    /// port.
    pub fn restart(&mut self, kill: bool) -> Result<(), String> {
        self.stop(kill)?;
        self.spawn()
    }

    /// Fails if the child has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => Err(format!("the embedded broker exited with {status}")),
            Some(Err(e)) => Err(format!("the embedded broker: {e}")),
            None => Err("the embedded broker is not running".into()),
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}
