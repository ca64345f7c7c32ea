"""A minimal Kafka wire-protocol client, written by hand for the raw-socket tests.

Only what the tests need, with no dependency beyond the standard library:

- CRC-32C (Castagnoli, table driven) and Kafka's zigzag varints;
- RecordBatch v2 (magic 2) encoding and decoding, uncompressed (gzip is decoded too);
- request header v1 (v2 for flexible versions) and these requests: ApiVersions v0,
  Metadata v1, InitProducerId v0-v4, Produce v3-v8, Fetch v4, and the classic consumer
  group protocol: FindCoordinator v2, JoinGroup v5, SyncGroup v3, Heartbeat v3,
  LeaveGroup v3, OffsetCommit v7, OffsetFetch v5 (the newest version of each before
  flexible encodings), with the consumer protocol's subscription and assignment;
- `Connection`: a blocking socket that sends a request and reads its response (or sends
  now and reads later, for requests the broker holds, like a JoinGroup mid-rebalance).

Field layouts follow the Kafka protocol guide (kafka.apache.org/protocol) and the JSON
message definitions in Kafka's clients/src/main/resources/common/message/.
"""

import gzip
import socket
import struct
import time
from collections import namedtuple

# --- CRC-32C ---------------------------------------------------------------------------

_CRC32C_POLY = 0x82F63B78  # Castagnoli polynomial, bit-reflected


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CRC32C_POLY if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C of `data`; pass a previous result as `crc` to continue it."""
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --- primitive encoders ------------------------------------------------------------------

def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def uvarint(v):
    """Unsigned LEB128 varint (Kafka's UNSIGNED_VARINT)."""
    if v < 0:
        raise ValueError("uvarint of a negative number")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v):
    """Zigzag varint (Kafka's VARINT / VARLONG, as used inside records)."""
    return uvarint((v << 1) ^ (v >> 63))


def string(s):
    """STRING / NULLABLE_STRING: int16 length, -1 for null."""
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else bytes(s)
    return i16(len(b)) + b


def compact_string(s):
    """COMPACT_(NULLABLE_)STRING: uvarint length + 1, 0 for null."""
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else bytes(s)
    return uvarint(len(b) + 1) + b


def nullable_bytes(b):
    """NULLABLE_BYTES / RECORDS: int32 length, -1 for null."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + bytes(b)


def array(items, encode):
    """ARRAY: int32 count then each item; None encodes a null array (-1)."""
    if items is None:
        return i32(-1)
    items = list(items)
    return i32(len(items)) + b"".join(encode(x) for x in items)


TAGGED_FIELDS_NONE = uvarint(0)


# --- decoding ----------------------------------------------------------------------------

class Reader:
    """Reads Kafka primitives from a bytes object, front to back."""

    def __init__(self, data, pos=0):
        self.data = bytes(data)
        self.pos = pos

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"need {n} bytes at {self.pos}, have {self.remaining()}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self):
        return self._unpack(">b", 1)

    def i16(self):
        return self._unpack(">h", 2)

    def i32(self):
        return self._unpack(">i", 4)

    def u32(self):
        return self._unpack(">I", 4)

    def i64(self):
        return self._unpack(">q", 8)

    def uvarint(self):
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self):
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def nullable_bytes(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def array(self, decode):
        n = self.i32()
        return None if n < 0 else [decode(self) for _ in range(n)]

    def skip_tagged_fields(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


# --- RecordBatch v2 ----------------------------------------------------------------------

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
TIMESTAMP_TYPE_BIT = 0x08  # attributes bit 3: 1 = LogAppendTime

Record = namedtuple("Record", "offset timestamp key value headers")
Batch = namedtuple(
    "Batch",
    "base_offset partition_leader_epoch attributes last_offset_delta base_timestamp "
    "max_timestamp producer_id producer_epoch base_sequence records crc_ok",
)

# Byte offsets inside a batch (Kafka's DefaultRecordBatch).
BATCH_LENGTH_OFFSET = 8
BATCH_CRC_OFFSET = 17
BATCH_ATTRIBUTES_OFFSET = 21  # the CRC covers everything from here to the end
BATCH_HEADER_SIZE = 61


def encode_record(offset_delta, timestamp_delta, key, value, headers=()):
    body = bytearray()
    body += i8(0)  # record attributes (unused)
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    for field in (key, value):
        if field is None:
            body += varint(-1)
        else:
            body += varint(len(field)) + bytes(field)
    body += varint(len(headers))
    for hkey, hvalue in headers:
        hk = hkey.encode()
        body += varint(len(hk)) + hk
        if hvalue is None:
            body += varint(-1)
        else:
            body += varint(len(hvalue)) + bytes(hvalue)
    return varint(len(body)) + bytes(body)


def encode_batch(records, producer_id=-1, producer_epoch=-1, base_sequence=-1,
                 base_timestamp=None, base_offset=0, attributes=0, partition_leader_epoch=-1):
    """RecordBatch v2 from `records`: (key, value) or (key, value, headers) tuples.

    Record i gets offset delta i and the batch's timestamp. The CRC-32C is computed here.
    """
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    encoded = b"".join(
        encode_record(i, 0, r[0], r[1], r[2] if len(r) > 2 else ())
        for i, r in enumerate(records)
    )
    after_crc = (
        i16(attributes)
        + i32(len(records) - 1)  # lastOffsetDelta
        + i64(base_timestamp)
        + i64(base_timestamp)  # maxTimestamp
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(len(records))
        + encoded
    )
    # batchLength counts from partitionLeaderEpoch to the end.
    batch_length = 4 + 1 + 4 + len(after_crc)
    return (
        i64(base_offset)
        + i32(batch_length)
        + i32(partition_leader_epoch)
        + i8(2)  # magic
        + struct.pack(">I", crc32c(after_crc))
        + after_crc
    )


def _decode_records(data, count, base_offset, base_timestamp):
    r = Reader(data)
    out = []
    for _ in range(count):
        length = r.varint()
        rec = Reader(r.take(length))
        rec.i8()  # attributes
        ts_delta = rec.varint()
        off_delta = rec.varint()
        klen = rec.varint()
        key = None if klen < 0 else rec.take(klen)
        vlen = rec.varint()
        value = None if vlen < 0 else rec.take(vlen)
        headers = []
        for _ in range(rec.varint()):
            hk = rec.take(rec.varint()).decode()
            hlen = rec.varint()
            headers.append((hk, None if hlen < 0 else rec.take(hlen)))
        out.append(Record(base_offset + off_delta, base_timestamp + ts_delta, key, value,
                          tuple(headers)))
    return out


def decode_batches(data):
    """Every complete RecordBatch v2 in `data` (a trailing partial batch is ignored)."""
    batches = []
    pos = 0
    data = bytes(data or b"")
    while len(data) - pos >= BATCH_HEADER_SIZE:
        r = Reader(data, pos)
        base_offset = r.i64()
        batch_length = r.i32()
        end = pos + 12 + batch_length
        if end > len(data):
            break
        partition_leader_epoch = r.i32()
        magic = r.i8()
        if magic != 2:
            raise ValueError(f"unexpected magic {magic} at {pos}")
        crc = r.u32()
        crc_ok = crc32c(data[pos + BATCH_ATTRIBUTES_OFFSET:end]) == crc
        attributes = r.i16()
        last_offset_delta = r.i32()
        base_timestamp = r.i64()
        max_timestamp = r.i64()
        producer_id = r.i64()
        producer_epoch = r.i16()
        base_sequence = r.i32()
        count = r.i32()
        payload = data[r.pos:end]
        codec = attributes & 0x07
        records = None
        if codec == COMPRESSION_GZIP:
            payload = gzip.decompress(payload)
            codec = COMPRESSION_NONE
        if codec == COMPRESSION_NONE:
            records = _decode_records(payload, count, base_offset, base_timestamp)
        batches.append(Batch(base_offset, partition_leader_epoch, attributes, last_offset_delta,
                             base_timestamp, max_timestamp, producer_id, producer_epoch,
                             base_sequence, records, crc_ok))
        pos = end
    return batches


# --- requests and responses --------------------------------------------------------------

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14
API_API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22

# Error codes the tests look for.
NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46
MEMBER_ID_REQUIRED = 79

PartitionProduceResult = namedtuple(
    "PartitionProduceResult", "error_code base_offset log_append_time log_start_offset")
PartitionFetchResult = namedtuple(
    "PartitionFetchResult", "error_code high_watermark last_stable_offset batches")


def request_header(api_key, api_version, correlation_id, client_id, flexible=False):
    """Request header v1 (v2, with tagged fields, for flexible request versions)."""
    header = i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)
    return header + TAGGED_FIELDS_NONE if flexible else header


def frame(payload):
    """Prefix a request with its int32 size."""
    return i32(len(payload)) + payload


def produce_body(partitions, acks=-1, timeout_ms=10000, transactional_id=None):
    """Produce v3-v8 body. `partitions`: {(topic, partition): batch bytes}."""
    by_topic = {}
    for (topic, partition), records in partitions.items():
        by_topic.setdefault(topic, []).append((partition, records))
    topic_data = array(
        by_topic.items(),
        lambda t: string(t[0]) + array(t[1], lambda p: i32(p[0]) + nullable_bytes(p[1])),
    )
    return string(transactional_id) + i16(acks) + i32(timeout_ms) + topic_data


def decode_produce_response(body, version):
    r = Reader(body)
    results = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            partition = r.i32()
            error_code = r.i16()
            base_offset = r.i64()
            log_append_time = r.i64()
            log_start_offset = r.i64() if version >= 5 else -1
            if version >= 8:
                r.array(lambda x: (x.i32(), x.string()))  # record_errors
                r.string()  # error_message
            results[(topic, partition)] = PartitionProduceResult(
                error_code, base_offset, log_append_time, log_start_offset)
    return results


def fetch_body(offsets, max_wait_ms=100, min_bytes=1, max_bytes=8 << 20,
               partition_max_bytes=1 << 20):
    """Fetch v4 body. `offsets`: {(topic, partition): fetch offset}."""
    by_topic = {}
    for (topic, partition), offset in offsets.items():
        by_topic.setdefault(topic, []).append((partition, offset))
    topics = array(
        by_topic.items(),
        lambda t: string(t[0]) + array(
            t[1], lambda p: i32(p[0]) + i64(p[1]) + i32(partition_max_bytes)),
    )
    # replica_id -1 (a consumer), isolation_level 0 (read uncommitted)
    return i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0) + topics


def decode_fetch_response_v4(body):
    r = Reader(body)
    r.i32()  # throttle_time_ms
    results = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            partition = r.i32()
            error_code = r.i16()
            high_watermark = r.i64()
            last_stable_offset = r.i64()
            r.array(lambda x: (x.i64(), x.i64()))  # aborted transactions
            records = r.nullable_bytes()
            results[(topic, partition)] = PartitionFetchResult(
                error_code, high_watermark, last_stable_offset, decode_batches(records))
    return results


def init_producer_id_body(version, transactional_id=None, timeout_ms=60000):
    if version >= 2:
        body = compact_string(transactional_id) + i32(timeout_ms)
        if version >= 3:
            body += i64(-1) + i16(-1)  # producer_id, producer_epoch: a new producer
        return body + TAGGED_FIELDS_NONE
    return string(transactional_id) + i32(timeout_ms)


def decode_init_producer_id(body):
    """(error_code, producer_id, producer_epoch); the same layout in v0-v4."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    return r.i16(), r.i64(), r.i16()


def decode_api_versions_v0(body):
    r = Reader(body)
    error_code = r.i16()
    versions = {}
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        versions[key] = (lo, hi)
    return error_code, versions


def metadata_v1_body(topics=None):
    """Metadata v1 body: a nullable array of topic names (None: all topics)."""
    return array(topics, string)


# --- consumer groups (classic protocol) ---------------------------------------------------

# The versions used: the newest before each API's flexible versions.
FIND_COORDINATOR_VERSION = 2
JOIN_GROUP_VERSION = 5
SYNC_GROUP_VERSION = 3
HEARTBEAT_VERSION = 3
LEAVE_GROUP_VERSION = 3
OFFSET_COMMIT_VERSION = 7
OFFSET_FETCH_VERSION = 5

Coordinator = namedtuple("Coordinator", "error_code node_id host port")
JoinResult = namedtuple("JoinResult", "error_code generation protocol leader member_id members")
# One member in a JoinGroup response (the leader's gets every member).
JoinedMember = namedtuple("JoinedMember", "member_id group_instance_id metadata")
# A committed offset from OffsetFetch; offset -1 when the group has none.
CommittedOffset = namedtuple("CommittedOffset", "offset leader_epoch metadata error_code")


def consumer_subscription(topics, user_data=None):
    """ConsumerProtocolSubscription v0: the JoinGroup metadata of a "consumer" member."""
    return i16(0) + array(topics, string) + nullable_bytes(user_data)


def consumer_assignment(partitions, user_data=None):
    """ConsumerProtocolAssignment v0 from {topic: [partition]}."""
    return (i16(0)
            + array(partitions.items(), lambda t: string(t[0]) + array(t[1], i32))
            + nullable_bytes(user_data))


def _by_topic(partitions):
    """{(topic, partition): value} -> [(topic, [(partition, value)])] in first-seen order."""
    out = {}
    for (topic, partition), value in partitions.items():
        out.setdefault(topic, []).append((partition, value))
    return list(out.items())


def find_coordinator_body(key, key_type=0):
    """FindCoordinator v1-v2: key_type 0 is a group."""
    return string(key) + i8(key_type)


def decode_find_coordinator(body):
    """FindCoordinator v1-v2 response."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    error_code = r.i16()
    r.string()  # error_message
    return Coordinator(error_code, r.i32(), r.string(), r.i32())


def join_group_body(group_id, member_id, protocols, session_timeout_ms=10000,
                    rebalance_timeout_ms=10000, group_instance_id=None,
                    protocol_type="consumer"):
    """JoinGroup v5. `protocols`: [(name, metadata bytes)]."""
    return (string(group_id) + i32(session_timeout_ms) + i32(rebalance_timeout_ms)
            + string(member_id) + string(group_instance_id) + string(protocol_type)
            + array(protocols, lambda p: string(p[0]) + nullable_bytes(p[1])))


def decode_join_group(body):
    """JoinGroup v5 response."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    error_code, generation = r.i16(), r.i32()
    protocol, leader, member_id = r.string(), r.string(), r.string()
    members = r.array(lambda x: JoinedMember(x.string(), x.string(), x.nullable_bytes()))
    return JoinResult(error_code, generation, protocol, leader, member_id, members)


def sync_group_body(group_id, generation, member_id, assignments, group_instance_id=None):
    """SyncGroup v3. `assignments`: {member id: assignment bytes} (the leader's; {} else)."""
    return (string(group_id) + i32(generation) + string(member_id) + string(group_instance_id)
            + array(assignments.items(), lambda a: string(a[0]) + nullable_bytes(a[1])))


def decode_sync_group(body):
    """SyncGroup v3 response: (error_code, assignment bytes)."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    return r.i16(), r.nullable_bytes()


def heartbeat_body(group_id, generation, member_id, group_instance_id=None):
    """Heartbeat v3."""
    return string(group_id) + i32(generation) + string(member_id) + string(group_instance_id)


def decode_error_only(body):
    """Heartbeat v1-v3 response (throttle_time_ms, error_code): the error code."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    return r.i16()


def leave_group_body(group_id, members):
    """LeaveGroup v3. `members`: [(member id, group instance id or None)]."""
    return string(group_id) + array(members, lambda m: string(m[0]) + string(m[1]))


def decode_leave_group(body):
    """LeaveGroup v3 response: (error_code, [(member id, instance id, error_code)])."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    error_code = r.i16()
    return error_code, r.array(lambda x: (x.string(), x.string(), x.i16()))


def offset_commit_body(group_id, generation, member_id, offsets, group_instance_id=None):
    """OffsetCommit v7. `offsets`: {(topic, partition): (offset, metadata or None)}."""
    def partition(p):
        index, (offset, metadata) = p
        return i32(index) + i64(offset) + i32(-1) + string(metadata)  # leader epoch unknown
    return (string(group_id) + i32(generation) + string(member_id) + string(group_instance_id)
            + array(_by_topic(offsets), lambda t: string(t[0]) + array(t[1], partition)))


def _read_by_partition(r, read_value):
    """A response's topics array, each with a partitions array (index first, then what
    read_value reads): {(topic, partition): value}."""
    out = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            partition = r.i32()
            out[(topic, partition)] = read_value(r)
    return out


def decode_offset_commit(body):
    """OffsetCommit v3-v7 response: {(topic, partition): error_code}."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    return _read_by_partition(r, Reader.i16)


def offset_fetch_body(group_id, partitions=None):
    """OffsetFetch v5. `partitions`: [(topic, partition)], or None for all of the group's."""
    topics = None
    if partitions is not None:
        topics = _by_topic({tp: None for tp in partitions})
    return string(group_id) + array(
        topics, lambda t: string(t[0]) + array([p for p, _ in t[1]], i32))


def decode_offset_fetch(body):
    """OffsetFetch v5 response: (error_code, {(topic, partition): CommittedOffset})."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    out = _read_by_partition(
        r, lambda x: CommittedOffset(x.i64(), x.i32(), x.string(), x.i16()))
    return r.i16(), out


class ProtocolError(Exception):
    pass


class Connection:
    """One blocking TCP connection to a broker."""

    def __init__(self, host, port, timeout=10.0, client_id="corelog-e2e-raw"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self.correlation_id = 0
        self._versions = None

    @classmethod
    def to(cls, bootstrap, **kw):
        host, port = bootstrap.rsplit(":", 1)
        return cls(host, int(port), **kw)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_bytes(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ProtocolError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self):
        (size,) = struct.unpack(">i", self._recv_exact(4))
        if size < 4:
            raise ProtocolError(f"bad response size {size}")
        return self._recv_exact(size)

    def send(self, api_key, version, body, flexible=False):
        """Send one request without waiting for its response; return a ticket for
        receive(). Responses arrive in request order."""
        self.correlation_id += 1
        cid = self.correlation_id
        header = request_header(api_key, version, cid, self.client_id, flexible)
        self.send_bytes(frame(header + body))
        return cid, api_key, flexible

    def receive(self, ticket):
        """The response body (after its header) of the request send() returned `ticket` for."""
        cid, api_key, flexible = ticket
        response = Reader(self.recv_frame())
        got = response.i32()
        if got != cid:
            raise ProtocolError(f"correlation id {got}, expected {cid}")
        # Flexible responses have header v1 (tagged fields), except ApiVersions.
        if flexible and api_key != API_API_VERSIONS:
            response.skip_tagged_fields()
        return response.data[response.pos:]

    def request(self, api_key, version, body, flexible=False):
        """Send one request; return the response body (after its header)."""
        return self.receive(self.send(api_key, version, body, flexible))

    def api_versions(self):
        if self._versions is None:
            error_code, versions = decode_api_versions_v0(
                self.request(API_API_VERSIONS, 0, b""))
            if error_code:
                raise ProtocolError(f"ApiVersions error {error_code}")
            self._versions = versions
        return self._versions

    def pick_version(self, api_key, lowest, highest):
        """The highest version in [lowest, highest] that the broker supports."""
        lo, hi = self.api_versions().get(api_key, (None, None))
        if lo is None or hi < lowest or lo > highest:
            raise ProtocolError(f"api {api_key}: broker has {lo}-{hi}, we need {lowest}-{highest}")
        return min(hi, highest)

    def init_producer_id(self):
        """(error_code, producer_id, producer_epoch) for a new idempotent producer."""
        version = self.pick_version(API_INIT_PRODUCER_ID, 0, 4)
        body = self.request(API_INIT_PRODUCER_ID, version, init_producer_id_body(version),
                            flexible=version >= 2)
        return decode_init_producer_id(body)

    def produce(self, partitions, acks=-1, timeout_ms=10000, version=None):
        """{(topic, partition): PartitionProduceResult} for {(topic, partition): batch}."""
        if version is None:
            version = self.pick_version(API_PRODUCE, 3, 8)
        body = self.request(API_PRODUCE, version, produce_body(partitions, acks, timeout_ms))
        return decode_produce_response(body, version)

    def fetch(self, offsets, **kw):
        """{(topic, partition): PartitionFetchResult}, in one Fetch v4 request."""
        return decode_fetch_response_v4(self.request(API_FETCH, 4, fetch_body(offsets, **kw)))

    # --- consumer groups: each at the fixed version named above ------------------------

    def _group_request(self, api_key, version, body):
        self.pick_version(api_key, version, version)
        return self.request(api_key, version, body)

    def find_coordinator(self, group_id):
        return decode_find_coordinator(self._group_request(
            API_FIND_COORDINATOR, FIND_COORDINATOR_VERSION, find_coordinator_body(group_id)))

    def send_join_group(self, group_id, member_id, protocols, **kw):
        """Send a JoinGroup and return at once; finish_join_group() reads its answer (the
        broker holds it until the rebalance completes)."""
        self.pick_version(API_JOIN_GROUP, JOIN_GROUP_VERSION, JOIN_GROUP_VERSION)
        return self.send(API_JOIN_GROUP, JOIN_GROUP_VERSION,
                         join_group_body(group_id, member_id, protocols, **kw))

    def finish_join_group(self, ticket):
        return decode_join_group(self.receive(ticket))

    def join_group(self, group_id, member_id, protocols, **kw):
        return self.finish_join_group(self.send_join_group(group_id, member_id, protocols, **kw))

    def sync_group(self, group_id, generation, member_id, assignments, group_instance_id=None):
        return decode_sync_group(self._group_request(
            API_SYNC_GROUP, SYNC_GROUP_VERSION,
            sync_group_body(group_id, generation, member_id, assignments, group_instance_id)))

    def heartbeat(self, group_id, generation, member_id, group_instance_id=None):
        return decode_error_only(self._group_request(
            API_HEARTBEAT, HEARTBEAT_VERSION,
            heartbeat_body(group_id, generation, member_id, group_instance_id)))

    def leave_group(self, group_id, members):
        return decode_leave_group(self._group_request(
            API_LEAVE_GROUP, LEAVE_GROUP_VERSION, leave_group_body(group_id, members)))

    def offset_commit(self, group_id, generation, member_id, offsets, group_instance_id=None):
        return decode_offset_commit(self._group_request(
            API_OFFSET_COMMIT, OFFSET_COMMIT_VERSION,
            offset_commit_body(group_id, generation, member_id, offsets, group_instance_id)))

    def offset_fetch(self, group_id, partitions=None):
        return decode_offset_fetch(self._group_request(
            API_OFFSET_FETCH, OFFSET_FETCH_VERSION, offset_fetch_body(group_id, partitions)))
