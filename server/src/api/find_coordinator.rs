//! FindCoordinator (key 10), versions 0-4; flexible from 3 (v4: several keys). This
//! broker coordinates every group; the group's shard is found internally.
//! Transaction coordinators are refused (no transactions).

use super::{read_array, Request};
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::{ErrorCode, Response};

const KEY_TYPE_TRANSACTION: i8 = 1;

/// Handles a request.
pub fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let (v, flex) = (req.version(), req.flexible());
    let mut rd = Reader::new(body);
    let key = if v <= 3 {
        Some(rd.string(flex)?.to_string())
    } else {
        None
    };
    let key_type = if v >= 1 { rd.i8()? } else { 0 };
    let keys = if v >= 4 {
        read_array(&mut rd, flex, 1, |rd| Ok(rd.string(flex)?.to_string()))?
    } else {
        vec![key.unwrap_or_default()]
    };
    rd.tagged_fields(flex)?;

    let cfg = &req.shard.config;
    let error = if key_type == KEY_TYPE_TRANSACTION {
        ErrorCode::CoordinatorNotAvailable
    } else {
        ErrorCode::None
    };
    let (node, port) = if error == ErrorCode::None {
        (cfg.node_id, i32::from(cfg.listen.port()))
    } else {
        (-1, -1)
    };
    let host = if error == ErrorCode::None {
        cfg.advertised_host.as_str()
    } else {
        ""
    };
    let message = (error != ErrorCode::None).then_some("transactions are not supported");
    let mut r = req.response();
    if v >= 1 {
        r.i32(0); // throttle_time_ms
    }
    if v <= 3 {
        r.i16(error.code());
        if v >= 1 {
            r.nullable_string(flex, message);
        }
        r.i32(node);
        r.string(flex, host);
        r.i32(port);
    } else {
        r.array_len(flex, keys.len());
        for k in &keys {
            r.string(flex, k);
            r.i32(node);
            r.string(flex, host);
            r.i32(port);
            r.i16(error.code());
            r.nullable_string(flex, message);
            r.tagged_fields(flex);
        }
    }
    r.tagged_fields(flex);
    Ok(r)
}
