//! DescribeCluster (key 60), versions 0-1, always flexible: this node is the cluster.

use super::metadata::{ALL_CLUSTER_OPERATIONS, CLUSTER_ID, OPERATIONS_NOT_REQUESTED};
use super::Request;
use crate::protocol::wire::{DecodeResult, Reader};
use crate::protocol::Response;

/// Handles a request.
pub fn handle(req: &Request<'_>, body: &[u8]) -> DecodeResult<Response> {
    let mut rd = Reader::new(body);
    let include_ops = rd.bool()?;
    let endpoint_type = if req.version() >= 1 { rd.i8()? } else { 1 };
    rd.tagged_fields(true)?;
    let cfg = &req.shard.config;
    let mut r = req.response();
    r.i32(0); // throttle_time_ms
    r.i16(0);
    r.nullable_string(true, None);
    if req.version() >= 1 {
        r.i8(endpoint_type);
    }
    r.string(true, CLUSTER_ID);
    r.i32(cfg.node_id);
    r.array_len(true, 1);
    r.i32(cfg.node_id);
    r.string(true, &cfg.advertised_host);
    r.i32(i32::from(cfg.listen.port()));
    r.nullable_string(true, None);
    r.tagged_fields(true);
    r.i32(if include_ops {
        ALL_CLUSTER_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    });
    r.tagged_fields(true);
    Ok(r)
}
