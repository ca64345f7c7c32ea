//! One pipelined Kafka connection on a glommio executor.
//!
//! Requests are written whole, one at a time (a semaphore orders writers); the broker
//! answers a connection's requests in order, so a reader task matches each response frame
//! to the oldest request still waiting and checks its correlation id. Any number of
//! requests may be outstanding; callers bound that themselves (`--in-flight`).
//!
//! With a busy-poll time (`--busy-poll-us`), the reader polls the socket that long before
//! its executor sleeps, as latency benchmarks such as sockperf do: an executor's sleep and
//! wake-up cost this VM 100-300 us per response, far more than the round trip itself.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corelog_engine::socket::recv_exact_into;
use futures_lite::io::AsyncWriteExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

use super::codec::Enc;
use super::ClientError;

/// The largest response frame accepted (Kafka's fetch.max.bytes default is 55 MiB).
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

type Reply = Result<Bytes, ClientError>;

struct Inner {
    addr: String,
    writer: Cell<Option<TcpStream>>,
    write_turn: Semaphore,
    waiting: RefCell<VecDeque<(i32, LocalSender<Reply>)>>,
    next_correlation: Cell<i32>,
    broken: RefCell<Option<ClientError>>,
}

/// A connection; cheap to clone (clones share it).
#[derive(Clone)]
pub struct Conn {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.inner.addr)
            .finish()
    }
}

/// A response still to come.
#[derive(Debug)]
pub struct Pending {
    rx: LocalReceiver<Reply>,
}

impl Pending {
    /// Waits for the response body (after its correlation id).
    pub async fn wait(self) -> Result<Bytes, ClientError> {
        match self.rx.recv().await {
            Some(r) => r,
            None => Err(ClientError::new("connection closed before the response")),
        }
    }
}

impl Conn {
    /// Connects to `addr` (host:port) and starts the reader task on this executor.
    pub async fn connect(addr: &str) -> Result<Conn, ClientError> {
        Self::connect_polling(addr, Duration::ZERO).await
    }

    /// [`connect`](Self::connect) with a reader that busy-polls an empty socket for up to
    /// `busy_poll` before it lets the executor sleep (its thread keeps its CPU busy
    /// meanwhile).
    pub async fn connect_polling(addr: &str, busy_poll: Duration) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::new(format!("connect to {addr}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| ClientError::new(format!("TCP_NODELAY on {addr}: {e}")))?;
        // The reader task owns the stream; writers use a second descriptor of it.
        let writer = corelog_engine::socket::duplicate(&stream)
            .map_err(|e| ClientError::new(format!("dup of the socket to {addr}: {e}")))?;
        let mut reader = stream;
        let conn = Conn {
            inner: Rc::new(Inner {
                addr: addr.to_string(),
                writer: Cell::new(Some(writer)),
                write_turn: Semaphore::new(1),
                waiting: RefCell::new(VecDeque::new()),
                next_correlation: Cell::new(1),
                broken: RefCell::new(None),
            }),
        };
        let weak = Rc::downgrade(&conn.inner);
        glommio::spawn_local(async move {
            let err = loop {
                let body = match read_frame(&mut reader, busy_poll).await {
                    Ok(b) => b,
                    Err(e) => break e,
                };
                let Some(inner) = weak.upgrade() else { return };
                let next = inner.waiting.borrow_mut().pop_front();
                let Some((correlation, reply)) = next else {
                    break ClientError::new("a response nobody asked for");
                };
                let got = i32::from_be_bytes(body[..4].try_into().expect("4 bytes checked"));
                if got != correlation {
                    break ClientError::new(format!(
                        "response correlation id {got}, expected {correlation}"
                    ));
                }
                let _ = reply.try_send(Ok(body.slice(4..)));
            };
            if let Some(inner) = weak.upgrade() {
                inner.fail(err);
            }
        })
        .detach();
        Ok(conn)
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Starts a request frame with this connection's next correlation id.
    pub fn request(&self, api_key: i16, version: i16, capacity: usize) -> (Enc, i32) {
        let c = self.inner.next_correlation.get();
        self.inner.next_correlation.set(c.wrapping_add(1));
        (Enc::request(api_key, version, c, capacity), c)
    }

    /// Writes a request; the response is awaited through the returned [`Pending`].
    pub async fn send(&self, frame: BytesMut, correlation: i32) -> Result<Pending, ClientError> {
        self.send_parts(&[frame.freeze()], correlation).await
    }

    /// [`send`](Self::send) for a frame in pieces, written back to back.
    pub async fn send_parts(
        &self,
        frame: &[Bytes],
        correlation: i32,
    ) -> Result<Pending, ClientError> {
        let (tx, rx) = local_channel::new_bounded(1);
        self.write(frame, Some((correlation, tx))).await?;
        Ok(Pending { rx })
    }

    /// Writes a request the broker does not answer (produce with acks=0).
    pub async fn send_only(&self, frame: &[Bytes]) -> Result<(), ClientError> {
        self.write(frame, None).await
    }

    /// Sends a request and waits for its response.
    pub async fn call(&self, frame: BytesMut, correlation: i32) -> Result<Bytes, ClientError> {
        self.send(frame, correlation).await?.wait().await
    }

    async fn write(
        &self,
        frame: &[Bytes],
        waiter: Option<(i32, LocalSender<Reply>)>,
    ) -> Result<(), ClientError> {
        let inner = &self.inner;
        let _turn = inner
            .write_turn
            .acquire_permit(1)
            .await
            .expect("never closed");
        if let Some(e) = inner.broken.borrow().as_ref() {
            return Err(e.clone());
        }
        // Registered before the write: the response may arrive before write_all returns.
        if let Some(w) = waiter {
            inner.waiting.borrow_mut().push_back(w);
        }
        let mut writer = inner.writer.take().expect("writers take turns");
        let mut res = Ok(());
        for part in frame {
            res = writer.write_all(part).await;
            if res.is_err() {
                break;
            }
        }
        inner.writer.set(Some(writer));
        if let Err(e) = res {
            let err = ClientError::new(format!("write to {}: {e}", inner.addr));
            inner.fail(err.clone());
            return Err(err);
        }
        Ok(())
    }
}

impl Inner {
    fn fail(&self, err: ClientError) {
        self.broken.borrow_mut().get_or_insert(err.clone());
        for (_, reply) in self.waiting.borrow_mut().drain(..) {
            let _ = reply.try_send(Err(err.clone()));
        }
    }
}

async fn read_frame(reader: &mut TcpStream, busy_poll: Duration) -> Result<Bytes, ClientError> {
    let mut head = BytesMut::with_capacity(4);
    recv_exact_into(reader, &mut head, 4, 4, busy_poll)
        .await
        .map_err(|e| ClientError::new(format!("read: {e}")))?;
    let size = i32::from_be_bytes(head[..].try_into().expect("4 bytes read"));
    if size < 4 || size as usize > MAX_RESPONSE_BYTES {
        return Err(ClientError::new(format!("response frame of {size} bytes")));
    }
    let size = size as usize;
    let mut body = BytesMut::with_capacity(size);
    recv_exact_into(reader, &mut body, size, size, busy_poll)
        .await
        .map_err(|e| ClientError::new(format!("read: {e}")))?;
    Ok(body.freeze())
}
