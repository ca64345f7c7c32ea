"""The hand-written wire encoder itself (no broker): CRC-32C vectors, varints, and
byte-for-byte agreement with kafka-python's independent implementation."""

import os

import pytest
from kafka.protocol.consumer.fetch import FetchRequest
from kafka.protocol.producer.produce import ProduceRequest
from kafka.protocol.producer.transaction import InitProducerIdRequest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

import kwire
from helpers import kafka_python_bytes

# RFC 3720 (iSCSI) appendix B.4 and the common check value.
CRC32C_VECTORS = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


@pytest.mark.parametrize("data,expected", CRC32C_VECTORS)
def test_crc32c_vectors(data, expected):
    assert kwire.crc32c(data) == expected


def test_crc32c_continues():
    data = os.urandom(1000)
    assert kwire.crc32c(data[400:], kwire.crc32c(data[:400])) == kwire.crc32c(data)


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 300, -300, 2**31 - 1, -2**31,
                                   2**63 - 1, -2**63])
def test_varint_round_trip(value):
    assert kwire.Reader(kwire.varint(value)).varint() == value


def test_varint_known_encodings():
    assert kwire.varint(0) == b"\x00"
    assert kwire.varint(-1) == b"\x01"
    assert kwire.varint(1) == b"\x02"
    assert kwire.varint(150) == b"\xac\x02"
    assert kwire.uvarint(300) == b"\xac\x02"


RECORDS = [(b"k1", b"v1", ()), (None, b"v2", (("h", b"x"), ("null", None))), (b"k3", None, ())]


def test_batch_matches_kafka_python_builder():
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=1234, producer_epoch=3, base_sequence=7,
                                        batch_size=1 << 20)
    for i, (k, v, h) in enumerate(RECORDS):
        builder.append(i, timestamp=1_700_000_000_000, key=k, value=v, headers=list(h))
    ours = kwire.encode_batch(RECORDS, producer_id=1234, producer_epoch=3, base_sequence=7,
                              base_timestamp=1_700_000_000_000, partition_leader_epoch=0)
    assert ours == bytes(builder.build())


def test_batch_decodes_in_kafka_python_and_back():
    data = kwire.encode_batch(RECORDS, producer_id=5, producer_epoch=0, base_sequence=0)
    theirs = DefaultRecordBatch(data)
    assert theirs.validate_crc()
    assert [(r.key, r.value, tuple(r.headers)) for r in theirs] == RECORDS
    [batch] = kwire.decode_batches(data + data[:40])  # a trailing partial batch is skipped
    assert batch.crc_ok and batch.producer_id == 5
    assert [(r.offset, r.key, r.value, r.headers) for r in batch.records] == \
        [(i, k, v, h) for i, (k, v, h) in enumerate(RECORDS)]
    corrupt = bytearray(data)
    corrupt[-1] ^= 1
    assert not kwire.decode_batches(bytes(corrupt))[0].crc_ok


@pytest.mark.parametrize("version", range(3, 9))
def test_produce_request_matches_kafka_python(version):
    batch = kwire.encode_batch([(b"k", b"v")], base_timestamp=1)
    part = ProduceRequest.TopicProduceData.PartitionProduceData
    theirs = ProduceRequest(transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[
        ProduceRequest.TopicProduceData(name="t", partition_data=[
            part(index=0, records=batch), part(index=2, records=batch)])])
    ours = kwire.frame(kwire.request_header(kwire.API_PRODUCE, version, 5, "cid")
                       + kwire.produce_body({("t", 0): batch, ("t", 2): batch}))
    assert ours == kafka_python_bytes(theirs, version, 5)


@pytest.mark.parametrize("version", range(0, 5))
def test_init_producer_id_request_matches_kafka_python(version):
    theirs = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000,
                                   producer_id=-1, producer_epoch=-1)
    ours = kwire.frame(kwire.request_header(kwire.API_INIT_PRODUCER_ID, version, 9, "cid",
                                            flexible=version >= 2)
                       + kwire.init_producer_id_body(version))
    assert ours == kafka_python_bytes(theirs, version, 9)


def test_fetch_request_matches_kafka_python():
    topic = FetchRequest.FetchTopic
    part = FetchRequest.FetchTopic.FetchPartition
    theirs = FetchRequest(replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=8 << 20,
                          isolation_level=0, topics=[
                              topic(topic="t", partitions=[
                                  part(partition=0, fetch_offset=5, partition_max_bytes=1 << 20),
                                  part(partition=1, fetch_offset=0, partition_max_bytes=1 << 20)]),
                              topic(topic="u", partitions=[
                                  part(partition=3, fetch_offset=7, partition_max_bytes=1 << 20)])])
    ours = kwire.frame(kwire.request_header(kwire.API_FETCH, 4, 1, "cid")
                       + kwire.fetch_body({("t", 0): 5, ("t", 1): 0, ("u", 3): 7}))
    assert ours == kafka_python_bytes(theirs, 4, 1)
