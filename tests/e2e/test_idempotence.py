"""The idempotent producer: stock clients, and hand-built Produce requests (kwire) that
retry a batch, skip a sequence number or carry a bad CRC."""

import pytest

import kwire
from helpers import consume, create_topic, kp_producer, kp_send_all, msg, produce, watermarks

RECORDS_PER_BATCH = 3


def batches_in_log(bootstrap, topic, partition=0):
    """Every batch of the partition, read raw (Fetch v4) from offset 0."""
    with kwire.Connection.to(bootstrap) as conn:
        result = conn.fetch({(topic, partition): 0})[(topic, partition)]
    assert result.error_code == kwire.NONE, result
    assert all(b.crc_ok for b in result.batches), "a batch served with a bad CRC-32C"
    return result.batches


def test_kafka_python_default_producer_is_idempotent(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name())
    p = kp_producer(broker.bootstrap)  # kafka-python 3 defaults: acks=all, idempotent
    try:
        sent = [msg(f"v{i}".encode(), key=b"k") for i in range(50)]
        assert [d.offset for d in kp_send_all(p, topic, sent)] == list(range(50))
    finally:
        p.close(timeout=10)
    records = consume(broker.bootstrap, [(topic, 0, 0)], 50, settle=0.5)
    assert [r.value for r in records] == [m["value"] for m in sent]
    # The batches carry a producer id and consecutive sequence numbers.
    batches = batches_in_log(broker.bootstrap, topic)
    assert {b.producer_id for b in batches} != {-1}
    assert len({b.producer_id for b in batches}) == 1
    assert [b.base_sequence for b in batches] == [b.base_offset for b in batches]


def test_confluent_idempotent_producer(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name())
    sent = [msg(f"v{i}".encode()) for i in range(200)]
    delivered = produce(broker.bootstrap, topic, sent, **{"enable.idempotence": True})
    assert [d.offset for d in delivered] == list(range(200))
    assert watermarks(broker.bootstrap, topic, 0) == (0, 200)
    assert all(b.producer_id >= 0 for b in batches_in_log(broker.bootstrap, topic))


@pytest.fixture
def raw_producer(broker, topic_name):
    """(connection, topic, producer id, epoch) for hand-built idempotent produces."""
    topic = create_topic(broker.bootstrap, topic_name())
    with kwire.Connection.to(broker.bootstrap) as conn:
        error_code, producer_id, epoch = conn.init_producer_id()
        assert error_code == kwire.NONE
        assert producer_id >= 0 and epoch >= 0
        yield conn, topic, producer_id, epoch


def make_batch(producer_id, epoch, sequence, label):
    return kwire.encode_batch(
        [(b"key", f"{label}-{i}".encode(), [("seq", b"%d" % (sequence + i))])
         for i in range(RECORDS_PER_BATCH)],
        producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def send(conn, topic, batch):
    return conn.produce({(topic, 0): batch}, acks=-1)[(topic, 0)]


def test_retried_batch_is_not_duplicated(broker, raw_producer):
    conn, topic, pid, epoch = raw_producer
    first = make_batch(pid, epoch, 0, "first")
    r1 = send(conn, topic, first)
    assert (r1.error_code, r1.base_offset) == (kwire.NONE, 0)
    # The same batch again (a retry after a lost response): acknowledged with the
    # original offset, not appended (Kafka answers NONE, not DUPLICATE_SEQUENCE_NUMBER).
    r2 = send(conn, topic, first)
    assert (r2.error_code, r2.base_offset) == (kwire.NONE, 0)
    # ... also on another connection.
    with kwire.Connection.to(broker.bootstrap) as other:
        r3 = send(other, topic, first)
    assert (r3.error_code, r3.base_offset) == (kwire.NONE, 0)

    second = make_batch(pid, epoch, RECORDS_PER_BATCH, "second")
    r4 = send(conn, topic, second)
    assert (r4.error_code, r4.base_offset) == (kwire.NONE, RECORDS_PER_BATCH)
    assert send(conn, topic, second).base_offset == RECORDS_PER_BATCH

    # The log holds each record once.
    n = 2 * RECORDS_PER_BATCH
    assert watermarks(broker.bootstrap, topic, 0) == (0, n)
    records = consume(broker.bootstrap, [(topic, 0, 0)], n, settle=0.5)
    assert [r.value for r in records] == \
        [f"{label}-{i}".encode() for label in ("first", "second")
         for i in range(RECORDS_PER_BATCH)]
    batches = batches_in_log(broker.bootstrap, topic)
    assert [(b.producer_id, b.base_sequence, b.base_offset) for b in batches] == \
        [(pid, 0, 0), (pid, RECORDS_PER_BATCH, RECORDS_PER_BATCH)]


def test_sequence_gap_is_out_of_order(broker, raw_producer):
    conn, topic, pid, epoch = raw_producer
    assert send(conn, topic, make_batch(pid, epoch, 0, "ok")).error_code == kwire.NONE
    # Sequence 3 is next; 10 leaves a gap.
    gap = send(conn, topic, make_batch(pid, epoch, 10, "gap"))
    assert gap.error_code == kwire.OUT_OF_ORDER_SEQUENCE_NUMBER, gap
    # Nothing was appended, and the right sequence still works.
    assert watermarks(broker.bootstrap, topic, 0) == (0, RECORDS_PER_BATCH)
    ok = send(conn, topic, make_batch(pid, epoch, RECORDS_PER_BATCH, "next"))
    assert (ok.error_code, ok.base_offset) == (kwire.NONE, RECORDS_PER_BATCH)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 2 * RECORDS_PER_BATCH)


def test_corrupt_batch_is_rejected(broker, topic_name):
    """A batch whose CRC-32C does not match gets CORRUPT_MESSAGE and is not stored."""
    topic = create_topic(broker.bootstrap, topic_name())
    batch = bytearray(kwire.encode_batch([(None, b"payload")]))
    batch[-1] ^= 0x01  # flip a bit of the value, after the CRC was computed
    with kwire.Connection.to(broker.bootstrap) as conn:
        bad = send(conn, topic, bytes(batch))
        assert bad.error_code == kwire.CORRUPT_MESSAGE, bad
        good = send(conn, topic, kwire.encode_batch([(None, b"payload")]))
        assert (good.error_code, good.base_offset) == (kwire.NONE, 0)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 1)
