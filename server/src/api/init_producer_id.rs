//! InitProducerId (key 22), versions 0-4; flexible from 2. Idempotent producers get a
//! fresh producer id (epoch 0) from the controller, whose id blocks are durable, so ids
//! are never reused across restarts. Transactional ids are refused: transactions are
//! not supported.

use super::Request;
use crate::broker::ownership::CONTROLLER_SHARD;
use crate::broker::router::{ControlOp, Op, Reply};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

/// Handles a request.
pub async fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let transactional_id = rd.nullable_string(flex)?;
    let _transaction_timeout_ms = rd.i32()?;
    if v >= 3 {
        let _producer_id = rd.i64()?;
        let _producer_epoch = rd.i16()?;
    }
    rd.tagged_fields(flex)?;

    let result = if transactional_id == Some("") {
        // As Kafka's transaction coordinator: an empty id is neither null nor an id.
        Err(ErrorCode::InvalidRequest)
    } else if transactional_id.is_some() {
        Err(ErrorCode::TransactionalIdAuthorizationFailed)
    } else {
        match req
            .shard
            .call(CONTROLLER_SHARD, Op::Control(ControlOp::AllocateProducerId))
            .await
        {
            Reply::ProducerId(Ok(id)) => Ok(id),
            Reply::ProducerId(Err(e)) => Err(e.code),
            _ => Err(ErrorCode::UnknownServerError),
        }
    };
    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    r.i16(result.err().map_or(0, |e| e.code()));
    r.i64(*result.as_ref().unwrap_or(&-1));
    r.i16(if result.is_ok() { 0 } else { -1 });
    r.tagged_fields(flex);
    Ok(r)
}
