//! One client connection: read a frame, decode its header, run the API's handler, write
//! the response pieces in order; repeat. Requests on a connection are handled one at a
//! time, in order, as Kafka does, so responses need no reordering.
//!
//! A frame whose size prefix is not positive or exceeds `request_max_bytes`, a header
//! that does not decode, an API key this broker does not serve, an unsupported version
//! of an API other than ApiVersions and a body that does not decode all close this
//! connection (with a log line naming the peer and the reason) and nothing else.

use std::rc::Rc;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::shard::Shard;
use crate::api;
use crate::protocol::RequestHeader;

/// Bytes read from the socket per read call while assembling a large frame: memory is
/// committed as data arrives, not as the size prefix claims.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Serves one connection until the peer closes it or sends something malformed.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    match serve_frames(&shard, &mut stream).await {
        Ok(()) => tracing::debug!(%peer, "connection closed by peer"),
        Err(reason) => tracing::warn!(%peer, %reason, "closing connection"),
    }
    let _ = stream.close().await;
}

async fn serve_frames(shard: &Rc<Shard>, stream: &mut TcpStream) -> Result<(), String> {
    let max = shard.config.request_max_bytes;
    loop {
        let mut size = [0u8; 4];
        match stream.read_exact(&mut size).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("read failed: {e}")),
        }
        let size = i32::from_be_bytes(size);
        if size <= 0 || size as usize > max {
            return Err(format!(
                "frame size {size} is outside 1..={max} (request_max_bytes)"
            ));
        }
        let frame = read_frame(stream, size as usize).await?;
        let (header, body_at) = match RequestHeader::decode(&frame) {
            Ok(Some(h)) => h,
            Ok(None) => {
                let key = i16::from_be_bytes([frame[0], frame[1]]);
                return Err(format!("unknown API key {key}"));
            }
            Err(e) => return Err(format!("request header: {e}")),
        };
        tracing::trace!(api = header.api_key, version = header.api_version,
            client = ?header.client_id, correlation = header.correlation_id, "request");
        let mut body = frame;
        let _ = body.split_to(body_at);
        let response = api::handle(shard, &header, body)
            .await
            .map_err(|e| format!("API {} v{}: {e}", header.api_key, header.api_version))?;
        if let Some(parts) = response {
            for part in parts {
                stream
                    .write_all(&part)
                    .await
                    .map_err(|e| format!("write failed: {e}"))?;
            }
        }
    }
}

async fn read_frame(stream: &mut TcpStream, size: usize) -> Result<BytesMut, String> {
    let mut frame = BytesMut::with_capacity(size.min(READ_CHUNK_BYTES));
    while frame.len() < size {
        let start = frame.len();
        let chunk = (size - start).min(READ_CHUNK_BYTES);
        frame.resize(start + chunk, 0);
        stream
            .read_exact(&mut frame[start..])
            .await
            .map_err(|e| format!("frame of {size} bytes cut short: {e}"))?;
    }
    Ok(frame)
}
