//! `corelog serve`: starts one pinned glommio executor per shard, joins them into the
//! channel mesh, opens each shard's partitions, binds every shard's SO_REUSEPORT
//! listener on the same address, and shuts down cleanly on SIGINT or SIGTERM.
//!
//! Start-up order (each shard): join the mesh, open owned partitions from the durable
//! catalog, wait until every shard has done so, then bind and accept. A connection that
//! lands on any shard can thus reach every partition from its first request.
//!
//! Shutdown (each shard): stop accepting, flush and close owned partitions (leaving the
//! clean-shutdown marker), wait for every shard to get there while still answering the
//! mesh, then exit.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::{MeshBuilder, Receivers};
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::net::TcpListener;
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};

use super::catalog::Catalog;
use super::connection;
use super::per_ip::ConnectionsPerIp;
use super::router::{Envelope, Router, MESH_QUEUE_MAX};
use super::shard::Shard;
use crate::config::BrokerConfig;
use crate::metrics::{self, Registry};

/// How often a shard looks at the shutdown flag and at start-up/shutdown barriers.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Counters shared by all shards for the start-up and shutdown barriers.
#[derive(Debug, Default)]
struct Barriers {
    /// Set by SIGINT/SIGTERM or a failing shard; shards also look at it while opening
    /// partitions, so that a stop during a long recovery is honoured.
    stop: Arc<AtomicBool>,
    ready: AtomicUsize,
    /// Shards that closed their partitions and groups.
    closed: AtomicUsize,
    /// Shards whose run ended with an error; one that failed before closing will never
    /// count as closed, so the others stop waiting for it.
    exited_with_error: AtomicUsize,
    failed: AtomicBool,
}

async fn wait_until(cond: impl Fn() -> bool) {
    while !cond() {
        glommio::timer::sleep(POLL_INTERVAL).await;
    }
}

/// Runs the broker until SIGINT/SIGTERM. Errors are start-up errors.
pub fn run(config: BrokerConfig) -> Result<(), String> {
    corelog_engine::testing::raise_fd_limit();
    warn_if_files_cannot_cover_connections(&config);
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let _lock = lock_data_dir(&config.data_dir)?;
    check_port_free(config.listen)?;
    let catalog = Catalog::load(&config.data_dir)?;
    let barriers = Arc::new(Barriers::default());
    install_signal_thread(barriers.clone())?;
    let config = Arc::new(config);
    let shards = config.shards();
    let mesh = (shards > 1).then(|| MeshBuilder::<Envelope, _>::full(shards, MESH_QUEUE_MAX));
    let per_ip = ConnectionsPerIp::new(config.connections_max_per_ip);
    tracing::info!(listen = %config.listen, shards, data_dir = %config.data_dir.display(),
        topics = catalog.topics.len(), "starting");
    tracing::info!(config = ?config, "effective configuration");
    if let Some(p) = &config.tuning_profile {
        tracing::info!(profile = %p.display(), write_chunk_bytes = config.log_writes.chunk_bytes,
            write_depth = config.log_writes.depth, io_ring_depth = config.io_ring_depth,
            log_flush_interval_ms = config.background_flush.interval.as_millis() as u64,
            "tuning profile applied (settings given explicitly win)");
    }
    super::memory::spawn_trimmer(config.memory_trim_interval)?;
    let registry = match config.metrics_listen {
        Some(addr) => {
            let registry = Registry::new(shards);
            metrics::serve(addr, registry.clone())?;
            Some(registry)
        }
        None => None,
    };

    let mut handles = Vec::with_capacity(shards);
    for (id, &cpu) in config.cpus.iter().enumerate() {
        let (config, catalog, barriers, mesh, per_ip, registry) = (
            config.clone(),
            catalog.clone(),
            barriers.clone(),
            mesh.clone(),
            per_ip.clone(),
            registry.clone(),
        );
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("corelog-shard-{id}"))
            // `corelog tune` checks the memlock limit against this figure.
            .io_memory(corelog_tuning::SHARD_IO_MEMORY_BYTES as usize)
            .ring_depth(config.io_ring_depth)
            .spawn(move || async move {
                let result =
                    run_shard(id, config, catalog, mesh, per_ip, registry, &barriers).await;
                if let Err(e) = &result {
                    barriers.exited_with_error.fetch_add(1, Ordering::SeqCst);
                    barriers.failed.store(true, Ordering::SeqCst);
                    barriers.stop.store(true, Ordering::SeqCst);
                    tracing::error!(shard = id, error = %e, "shard failed");
                }
                result
            })
            .map_err(|e| format!("cannot start shard {id} on CPU {cpu}: {e}"))?;
        handles.push(handle);
    }
    let mut first_error = None;
    for (id, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("shard {id} did not start: {e}"));
            }
        }
    }
    match first_error {
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Some(e) => Err(e),
    }
}

async fn run_shard(
    id: usize,
    config: Arc<BrokerConfig>,
    catalog: Catalog,
    mesh: Option<MeshBuilder<Envelope, glommio::channels::channel_mesh::Full>>,
    per_ip: Arc<ConnectionsPerIp>,
    registry: Option<Arc<Registry>>,
    barriers: &Barriers,
) -> Result<(), String> {
    let shards = config.shards();
    let (senders, receivers) = match mesh {
        Some(m) => {
            let (s, r) = m
                .join()
                .await
                .map_err(|_| "cannot join the shard mesh".to_string())?;
            // Peers are ordered by executor id, and executors were created in shard
            // order; check rather than assume.
            if s.peer_id() != id {
                return Err(format!("shard {id} got mesh position {}", s.peer_id()));
            }
            (Some(s), Some(r))
        }
        None => (None, None),
    };
    let background = glommio::executor().create_task_queue(
        Shares::Static(100),
        Latency::NotImportant,
        "corelog-background",
    );
    let shard = Rc::new(Shard::new(
        id,
        config.clone(),
        catalog.clone(),
        Router::new(id, senders),
        background,
        barriers.stop.clone(),
        per_ip,
    ));
    if let Some(r) = receivers {
        spawn_receive_loops(&shard, r);
    }
    if let Err(e) = shard.apply_catalog(catalog).await {
        // The partitions that did open are served; the others answer with an error.
        tracing::error!(shard = id, error = %e, "some partitions did not open");
    }
    shard.open_groups().await?;
    let group_ticks = glommio::spawn_local_into(shard.groups.clone().tick_loop(), background)
        .map_err(|e| e.to_string())?;
    let metrics_publisher = match registry {
        Some(registry) => {
            let queues = vec![
                ("default", glommio::executor().current_task_queue()),
                ("background", background),
            ];
            let publish = shard.clone().publish_metrics(registry, queues);
            Some(glommio::spawn_local_into(publish, background).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    barriers.ready.fetch_add(1, Ordering::SeqCst);
    wait_until(|| {
        barriers.ready.load(Ordering::SeqCst) == shards || barriers.stop.load(Ordering::SeqCst)
    })
    .await;

    // Another shard failed to start (a full disk, a damaged file): the broker stops
    // without ever listening, rather than announcing that it serves.
    let bound = if barriers.stop.load(Ordering::SeqCst) {
        Ok(None)
    } else {
        TcpListener::bind(config.listen).map(Some)
    };
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            barriers.failed.store(true, Ordering::SeqCst);
            barriers.stop.store(true, Ordering::SeqCst);
            tracing::error!(shard = id, listen = %config.listen, error = %e, "cannot listen");
            None
        }
    };
    let accept_task = listener.map(|l| {
        if id == 0 {
            tracing::info!(listen = %config.listen, shards, "serving");
            eprintln!(
                "corelog: serving Kafka on {} with {shards} shard(s)",
                config.listen
            );
        }
        glommio::spawn_local(accept_loop(shard.clone(), l))
    });
    let retention = glommio::spawn_local_into(
        shard
            .clone()
            .retention_loop(config.retention_check_interval),
        background,
    )
    .map_err(|e| e.to_string())?;

    wait_until(|| barriers.stop.load(Ordering::SeqCst)).await;
    tracing::info!(shard = id, "shutting down");
    if let Some(t) = accept_task {
        t.cancel().await;
    }
    retention.cancel().await;
    group_ticks.cancel().await;
    if let Some(t) = metrics_publisher {
        t.cancel().await;
    }
    shard.close_all().await;
    shard.groups.close().await;
    barriers.closed.fetch_add(1, Ordering::SeqCst);
    wait_until(|| {
        barriers.closed.load(Ordering::SeqCst) + barriers.exited_with_error.load(Ordering::SeqCst)
            >= shards
    })
    .await;
    shard.router.close();
    // Let closed files finish closing on the ring before the executor goes away.
    glommio::timer::sleep(Duration::from_millis(5)).await;
    if barriers.failed.load(Ordering::SeqCst) && id == 0 {
        return Err("the broker failed to start or run; see the errors above".into());
    }
    Ok(())
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.connections.get() >= shard.config.connections_max {
            metrics::connection_refused();
            tracing::warn!(
                max = shard.config.connections_max,
                "too many connections; refusing one"
            );
            continue;
        }
        let Some(slot) = stream
            .peer_addr()
            .ok()
            .and_then(|a| shard.per_ip.admit(a.ip()))
        else {
            metrics::connection_refused();
            tracing::warn!(peer = ?stream.peer_addr().ok(), max = shard.config.connections_max_per_ip,
                "too many connections from one IP (connections_max_per_ip); refusing one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        metrics::connection_accepted();
        connection::spawn(shard.clone(), stream, slot);
    }
}

fn spawn_receive_loops(shard: &Rc<Shard>, mut receivers: Receivers<Envelope>) {
    for (peer, rx) in receivers.streams() {
        glommio::spawn_local(receive_loop(shard.clone(), peer, rx)).detach();
    }
}

async fn receive_loop(shard: Rc<Shard>, peer: usize, rx: ConnectedReceiver<Envelope>) {
    while let Some(env) = rx.recv().await {
        metrics::mesh_received();
        match env {
            Envelope::Request { id, from, op } => {
                debug_assert_eq!(from, peer);
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let reply = shard.clone().execute(op).await;
                    shard.router.reply(from, id, reply).await;
                })
                .detach();
            }
            Envelope::Reply { id, reply } => shard.router.deliver(id, reply),
            Envelope::Connection(socket) => connection::adopt(shard.clone(), socket),
        }
    }
}

/// Takes an exclusive lock on the data directory (`DATA_DIR/.lock`, as Kafka does) so
/// that a second broker on the same directory refuses to start instead of corrupting
/// it. The lock is held while the returned file is open.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "data directory {} is in use by another process (lock {})",
            dir.display(),
            path.display()
        ));
    }
    Ok(file)
}

/// Descriptors a connection holds: its socket (its writer task uses the same one,
/// `SameSocket`; a hand-over to another shard holds a second one for a moment).
const FILES_PER_CONNECTION: u64 = 1;
/// Descriptors kept for segment and index files, the listener and the executors' rings.
const FILES_RESERVED: u64 = 1024;

/// Warns when the open-file limit cannot hold `connections_max` connections on every
/// shard: past it, connections are refused at accept ("Too many open files").
fn warn_if_files_cannot_cover_connections(config: &BrokerConfig) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let allowed = (config.connections_max as u64).saturating_mul(config.shards() as u64);
    let room = lim.rlim_cur.saturating_sub(FILES_RESERVED) / FILES_PER_CONNECTION;
    if room < allowed {
        tracing::warn!(
            open_files_limit = lim.rlim_cur,
            connections_fit = room,
            connections_max_all_shards = allowed,
            "the open-file limit holds fewer connections than connections_max allows \
             (each connection holds one descriptor); raise `ulimit -n` or lower connections_max"
        );
    }
}

/// Shards bind with SO_REUSEPORT (glommio always sets it), which would let a second
/// broker share the port silently; a plain bind first makes that an error. A plain bind
/// also fails while connections of a broker that just stopped linger in TIME_WAIT
/// (accepted sockets lack SO_REUSEADDR), so a failed bind is only believed when something
/// accepts connections there: a restart must not wait a minute for TIME_WAIT.
fn check_port_free(addr: std::net::SocketAddr) -> Result<(), String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
            {
                Err(c) if c.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
                _ => Err(format!("cannot listen on {addr}: {e}")),
            }
        }
        Err(e) => Err(format!("cannot listen on {addr}: {e}")),
    }
}

/// Blocks SIGINT and SIGTERM in every thread (executors inherit the mask) and waits for
/// them on a dedicated thread, which sets the stop flag.
fn install_signal_thread(barriers: Arc<Barriers>) -> Result<(), String> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; the calls only read and
    // write the set we own and this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("cannot block SIGINT/SIGTERM".into());
        }
        set
    };
    std::thread::Builder::new()
        .name("corelog-signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait reads the set and writes the signal number we own.
            let rc = unsafe { libc::sigwait(&set, &mut sig) };
            if rc == 0 {
                tracing::info!(signal = sig, "stop requested");
                eprintln!("corelog: stopping (signal {sig})");
                barriers.stop.store(true, Ordering::SeqCst);
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}
