//! The Kafka wire protocol: framing, request headers, the API version table, error codes.
//!
//! ```text
//! frame    = size:i32 (bytes that follow, 1..=request_max_bytes) | header | body
//! header   = api_key:i16 | api_version:i16 | correlation_id:i32 | client_id:NULLABLE_STRING
//!            [| tagged fields]   (header v2, when the API version is flexible)
//! response = size:i32 | correlation_id:i32 [| tagged fields] | body
//! ```
//! The client id is a classic (i16-length) string even in header v2. The response header
//! has tagged fields when the API version is flexible, except for ApiVersions, whose
//! response header is always v0 so that a client can read it before it knows anything.

pub mod error_code;
pub mod wire;

use bytes::{Bytes, BytesMut};

pub use error_code::{ErrorCode, KafkaError};
use wire::{DecodeResult, Reader, Writer};

/// The APIs this broker serves, with the versions it advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ApiKey {
    Produce = 0,
    Fetch = 1,
    ListOffsets = 2,
    Metadata = 3,
    OffsetCommit = 8,
    OffsetFetch = 9,
    FindCoordinator = 10,
    JoinGroup = 11,
    Heartbeat = 12,
    LeaveGroup = 13,
    SyncGroup = 14,
    DescribeGroups = 15,
    ListGroups = 16,
    ApiVersions = 18,
    CreateTopics = 19,
    DeleteTopics = 20,
    DeleteRecords = 21,
    InitProducerId = 22,
    OffsetForLeaderEpoch = 23,
    DescribeConfigs = 32,
    DeleteGroups = 42,
    CreatePartitions = 37,
    IncrementalAlterConfigs = 44,
    OffsetDelete = 47,
    DescribeCluster = 60,
}

/// One row of the version table: what ApiVersions advertises and where the flexible
/// encoding starts (from the `flexibleVersions` of Kafka's message schemas).
#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    /// The API.
    pub key: ApiKey,
    /// Lowest version advertised.
    pub min: i16,
    /// Highest version advertised.
    pub max: i16,
    /// First flexible version.
    pub flexible_from: i16,
}

/// Every API served. Produce is advertised from 0 although v0-2 are refused, because
/// librdkafka before 2.11.1 enables gzip/snappy/lz4 only when the range contains 0
/// (Kafka 4 does the same); Fetch starts at 4, the first version of record format v2.
pub const APIS: &[ApiSpec] = &[
    spec(ApiKey::Produce, 0, 9, 9),
    spec(ApiKey::Fetch, 4, 12, 12),
    spec(ApiKey::ListOffsets, 0, 7, 6),
    spec(ApiKey::Metadata, 0, 12, 9),
    spec(ApiKey::OffsetCommit, 0, 8, 8),
    spec(ApiKey::OffsetFetch, 0, 8, 6),
    spec(ApiKey::FindCoordinator, 0, 4, 3),
    spec(ApiKey::JoinGroup, 0, 7, 6),
    spec(ApiKey::Heartbeat, 0, 4, 4),
    spec(ApiKey::LeaveGroup, 0, 5, 4),
    spec(ApiKey::SyncGroup, 0, 5, 4),
    spec(ApiKey::DescribeGroups, 0, 5, 5),
    spec(ApiKey::ListGroups, 0, 4, 3),
    spec(ApiKey::ApiVersions, 0, 4, 3),
    spec(ApiKey::CreateTopics, 0, 7, 5),
    spec(ApiKey::DeleteTopics, 0, 6, 4),
    spec(ApiKey::DeleteRecords, 0, 2, 2),
    spec(ApiKey::InitProducerId, 0, 4, 2),
    spec(ApiKey::OffsetForLeaderEpoch, 0, 4, 4),
    spec(ApiKey::DescribeConfigs, 0, 4, 4),
    spec(ApiKey::CreatePartitions, 0, 3, 2),
    spec(ApiKey::DeleteGroups, 0, 2, 2),
    spec(ApiKey::OffsetDelete, 0, 0, i16::MAX),
    spec(ApiKey::IncrementalAlterConfigs, 0, 1, 1),
    spec(ApiKey::DescribeCluster, 0, 1, 0),
];

const fn spec(key: ApiKey, min: i16, max: i16, flexible_from: i16) -> ApiSpec {
    assert!(min <= max);
    ApiSpec {
        key,
        min,
        max,
        flexible_from,
    }
}

impl ApiSpec {
    /// The row for a wire API key, if served.
    pub fn find(api_key: i16) -> Option<&'static ApiSpec> {
        APIS.iter().find(|s| s.key as i16 == api_key)
    }
    /// Whether `version` is advertised.
    pub fn supports(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
    /// Whether `version` uses the flexible encoding.
    pub fn is_flexible(&self, version: i16) -> bool {
        version >= self.flexible_from
    }
}

/// A decoded request header.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    /// Wire API key.
    pub api_key: i16,
    /// Requested version.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// Client id, if sent.
    pub client_id: Option<String>,
    /// Whether the body (and the response) use the flexible encoding.
    pub flexible: bool,
    /// The client's IP address, set by the connection (not on the wire).
    pub client_host: Option<String>,
}

impl RequestHeader {
    /// Decodes the header at the start of a frame; returns it and the body offset. The
    /// API must be known (its table row says whether the header has tagged fields);
    /// `Ok(None)` means an API key this broker does not serve.
    pub fn decode(frame: &[u8]) -> DecodeResult<Option<(RequestHeader, usize)>> {
        let mut r = Reader::new(frame);
        let api_key = r.i16()?;
        let api_version = r.i16()?;
        let correlation_id = r.i32()?;
        let Some(spec) = ApiSpec::find(api_key) else {
            return Ok(None);
        };
        let client_id = r.nullable_string(false)?.map(str::to_owned);
        // An unsupported ApiVersions version is answered (v0 body); the header of a
        // version newer than ours may be flexible, so skip its tags only when it is.
        let flexible = spec.is_flexible(api_version);
        r.tagged_fields(flexible)?;
        Ok(Some((
            RequestHeader {
                api_key,
                api_version,
                correlation_id,
                client_id,
                flexible,
                client_host: None,
            },
            r.position(),
        )))
    }
}

/// Smallest attachment written as its own piece instead of being copied into the
/// response buffer.
const ATTACH_MIN_BYTES: usize = 4096;

/// A response being built: primitives go into a buffer; stored record batches are
/// attached as they are (no copy for large ones) and written to the socket in order.
#[derive(Debug)]
pub struct Response {
    w: Writer,
    parts: Vec<Bytes>,
}

impl Response {
    /// Starts a response: the size placeholder and the header.
    pub fn new(correlation_id: i32, header_tags: bool) -> Self {
        let mut w = Writer::with_capacity(256);
        w.i32(0); // size, filled in by finish()
        w.i32(correlation_id);
        w.tagged_fields(header_tags);
        Response {
            w,
            parts: Vec::new(),
        }
    }

    /// Appends stored bytes (record batches) without re-encoding them.
    pub fn attach(&mut self, b: Bytes) {
        if b.len() < ATTACH_MIN_BYTES {
            self.w.buf.extend_from_slice(&b);
        } else {
            self.parts.push(self.w.buf.split().freeze());
            self.parts.push(b);
        }
    }

    /// The pieces of the framed response, in write order.
    pub fn finish(mut self) -> Vec<Bytes> {
        self.parts.push(self.w.buf.split().freeze());
        let total: usize = self.parts.iter().map(Bytes::len).sum();
        let size = (total - 4) as i32;
        let first = &mut self.parts[0];
        let mut head = BytesMut::from(&first[..]);
        head[..4].copy_from_slice(&size.to_be_bytes());
        *first = head.freeze();
        self.parts.retain(|p| !p.is_empty());
        self.parts
    }
}

impl std::ops::Deref for Response {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.w
    }
}

impl std::ops::DerefMut for Response {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_pieces_are_framed_in_order() {
        let mut r = Response::new(7, true);
        r.i16(0);
        r.attach(Bytes::from(vec![9u8; 5000]));
        r.i32(1);
        let parts = r.finish();
        assert_eq!(parts.len(), 3);
        let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(&all[..4], &((all.len() - 4) as i32).to_be_bytes());
        assert_eq!(&all[4..8], &7i32.to_be_bytes());
        assert_eq!(all[8], 0);
        assert_eq!(&all[all.len() - 4..], &1i32.to_be_bytes());
    }

    #[test]
    fn header_of_unknown_api_is_none_and_flexible_header_is_parsed() {
        let mut w = Writer::default();
        w.i16(999);
        w.i16(0);
        w.i32(1);
        w.nullable_string(false, None);
        assert!(RequestHeader::decode(&w.buf).unwrap().is_none());
        let mut w = Writer::default();
        w.i16(18);
        w.i16(3);
        w.i32(5);
        w.nullable_string(false, Some("rdkafka"));
        w.tagged_fields(true);
        w.i8(42);
        let (h, at) = RequestHeader::decode(&w.buf).unwrap().unwrap();
        assert!(h.flexible);
        assert_eq!(h.client_id.as_deref(), Some("rdkafka"));
        assert_eq!(w.buf[at], 42);
    }
}
