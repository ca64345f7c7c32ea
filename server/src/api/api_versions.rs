//! ApiVersions (key 18), versions 0-4; flexible from 3.
//!
//! The response header is always v0 (no tagged fields), whatever the version, so that
//! a client can parse it before it knows what the broker speaks. A version this broker
//! does not know is answered with a v0 body: UNSUPPORTED_VERSION and the real ranges,
//! from which the client picks a version and asks again.

use super::Request;
use crate::protocol::{ErrorCode, Response, APIS};

/// The answer to a supported version.
pub fn handle(req: &Request<'_>) -> Response {
    // The request body (client software name and version, v3+) is informational.
    encode(req, ErrorCode::None, req.version(), req.flexible())
}

/// The answer to a version outside 0-4.
pub fn unsupported(req: &Request<'_>) -> Response {
    encode(req, ErrorCode::UnsupportedVersion, 0, false)
}

fn encode(req: &Request<'_>, error: ErrorCode, version: i16, flexible: bool) -> Response {
    let mut r = Response::new(req.header.correlation_id, false);
    r.i16(error.code());
    r.array_len(flexible, APIS.len());
    for api in APIS {
        r.i16(api.key as i16);
        r.i16(api.min);
        r.i16(api.max);
        r.tagged_fields(flexible);
    }
    if version >= 1 {
        r.i32(0); // throttle_time_ms
    }
    r.tagged_fields(flexible);
    r
}
