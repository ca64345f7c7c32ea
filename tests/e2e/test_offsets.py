"""Offsets: manual assignment and seek, beginning/end, offsets for times, watermarks,
DeleteRecords and what a consumer below the low watermark gets."""

import kafka
import kafka.errors
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

from helpers import (
    admin,
    assert_contiguous,
    consume,
    consumer,
    create_topic,
    kp_admin,
    kp_assign,
    kp_consumer,
    kp_poll_records,
    kp_watermarks,
    msg,
    poll_error,
    poll_records,
    produce,
    result_of,
    values,
    wait_watermarks,
    watermarks,
)

BASE_TS = 1_700_000_000_000


def timed_topic(bootstrap, name, count=20, partitions=1):
    """A topic whose partition 0 holds `count` records, record i stamped BASE_TS + 1000 i."""
    create_topic(bootstrap, name, partitions)
    produce(bootstrap, name, [msg(f"v{i}".encode(), partition=0, timestamp=BASE_TS + 1000 * i)
                              for i in range(count)])
    return name


def filled_topic(bootstrap, name, partitions, count):
    """A topic with `count` records in each partition, produced partition by partition."""
    create_topic(bootstrap, name, partitions)
    produce(bootstrap, name, [msg(f"p{p}-{i}".encode(), partition=p)
                              for p in range(partitions) for i in range(count)])
    return name


def test_assign_beginning_end_and_seek(broker, topic_name):
    topic = timed_topic(broker.bootstrap, topic_name())
    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        first = poll_records(c, 3)
        assert [r.offset for r in first] == [0, 1, 2]
        # Seek forward, then back: the next record is the one sought.
        c.seek(TopicPartition(topic, 0, 15))
        assert [r.offset for r in poll_records(c, 5)] == [15, 16, 17, 18, 19]
        c.seek(TopicPartition(topic, 0, 4))
        assert values(poll_records(c, 2)) == [b"v4", b"v5"]
    finally:
        c.close()

    # OFFSET_END: only records produced after the assignment.
    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        assert poll_records(c, 0, settle=1.0) == []
        produce(broker.bootstrap, topic, [msg(b"late", partition=0)])
        late = poll_records(c, 1, settle=0.3)
        assert (late[0].offset, late[0].value) == (20, b"late")
    finally:
        c.close()


def test_kafka_python_seek_beginning_end_position(broker, topic_name):
    topic = timed_topic(broker.bootstrap, topic_name())
    tp = kafka.TopicPartition(topic, 0)
    c = kp_consumer(broker.bootstrap)
    try:
        c.assign([tp])
        c.seek_to_end(tp)
        assert c.position(tp) == 20
        c.seek_to_beginning(tp)
        assert c.position(tp) == 0
        assert [r.offset for r in kp_poll_records(c, 20)] == list(range(20))
        c.seek(tp, 12)
        assert kp_poll_records(c, 1)[0].value == b"v12"
    finally:
        c.close()


def test_offsets_for_times(broker, topic_name):
    topic = timed_topic(broker.bootstrap, topic_name())
    # The first record with timestamp >= the target.
    targets = {BASE_TS - 5: 0, BASE_TS: 0, BASE_TS + 5500: 6, BASE_TS + 19_000: 19}
    c = consumer(broker.bootstrap)
    try:
        for ts, offset in targets.items():
            [found] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert (found.error, found.offset) == (None, offset), ts
        # Past the newest timestamp: no offset (-1, i.e. OFFSET_END).
        [found] = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 60_000)], timeout=10)
        assert found.offset == OFFSET_END
    finally:
        c.close()

    kc = kp_consumer(broker.bootstrap)
    try:
        tp = kafka.TopicPartition(topic, 0)
        for ts, offset in targets.items():
            found = kc.offsets_for_times({tp: ts}, timeout_ms=10000)[tp]
            assert (found.offset, found.timestamp) == (offset, BASE_TS + 1000 * offset), ts
        assert kc.offsets_for_times({tp: BASE_TS + 60_000}, timeout_ms=10000)[tp] is None
        # Then consume from the offset found.
        kp_assign(kc, [(topic, 0, kc.offsets_for_times({tp: BASE_TS + 7000})[tp].offset)])
        assert kp_poll_records(kc, 1)[0].value == b"v7"
    finally:
        kc.close()


def test_watermarks_both_clients(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(), partitions=2)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    assert kp_watermarks(broker.bootstrap, topic, [0, 1]) == ({0: 0, 1: 0}, {0: 0, 1: 0})

    produce(broker.bootstrap, topic, [msg(b"x", partition=0)] * 25 + [msg(b"y", partition=1)] * 7)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 25)
    assert watermarks(broker.bootstrap, topic, 1) == (0, 7)
    assert kp_watermarks(broker.bootstrap, topic, [0, 1]) == ({0: 0, 1: 0}, {0: 25, 1: 7})


def test_delete_records_confluent(broker, topic_name):
    topic = filled_topic(broker.bootstrap, topic_name(), partitions=2, count=30)
    a = admin(broker.bootstrap)
    done = result_of(a.delete_records([TopicPartition(topic, 0, 10)], operation_timeout=10))
    assert [d.low_watermark for d in done.values()] == [10]
    assert watermarks(broker.bootstrap, topic, 0) == (10, 30)
    assert watermarks(broker.bootstrap, topic, 1) == (0, 30)  # untouched
    assert kp_watermarks(broker.bootstrap, topic, [0]) == ({0: 10}, {0: 30})

    # Reading below the low watermark: out of range; with auto.offset.reset=error the
    # consumer reports it, with earliest it restarts at the low watermark.
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        err = poll_error(c, KafkaError._AUTO_OFFSET_RESET)
        assert "out of range" in err.str().lower(), err
    finally:
        c.close()
    records = consume(broker.bootstrap, [(topic, 0, 5)], 20,
                      **{"auto.offset.reset": "earliest"})
    assert records[0].offset == 10 and records[0].value == b"p0-10"
    assert_contiguous(records, start=10)

    # OFFSET_END (-1) deletes up to the high watermark; the log is then empty.
    done = result_of(a.delete_records([TopicPartition(topic, 1, OFFSET_END)]))
    assert [d.low_watermark for d in done.values()] == [30]
    assert watermarks(broker.bootstrap, topic, 1) == (30, 30)
    # Past the high watermark: OFFSET_OUT_OF_RANGE.
    [future] = a.delete_records([TopicPartition(topic, 1, 31)]).values()
    err = future.exception(timeout=15)
    assert err is not None and err.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, err


def test_delete_records_kafka_python(broker, topic_name):
    topic = filled_topic(broker.bootstrap, topic_name(), partitions=1, count=30)
    tp = kafka.TopicPartition(topic, 0)
    ka = kp_admin(broker.bootstrap)
    try:
        result = ka.delete_records({tp: 20})
        assert result[tp]["low_watermark"] == 20
    finally:
        ka.close()
    wait_watermarks(broker.bootstrap, topic, 0, (20, 30))
    assert kp_watermarks(broker.bootstrap, topic, [0]) == ({0: 20}, {0: 30})

    # kafka-python below the low watermark: 'earliest' resets to it...
    c = kp_consumer(broker.bootstrap, auto_offset_reset="earliest")
    try:
        kp_assign(c, [(topic, 0, 3)])
        records = kp_poll_records(c, 10)
        assert [r.offset for r in records] == list(range(20, 30))
    finally:
        c.close()
    # ... and without a reset policy poll() raises OffsetOutOfRangeError.
    c = kp_consumer(broker.bootstrap, auto_offset_reset="none")
    try:
        kp_assign(c, [(topic, 0, 3)])
        raised = None
        for _ in range(50):
            try:
                c.poll(timeout_ms=200)
            except kafka.errors.OffsetOutOfRangeError as e:
                raised = e
                break
        assert raised is not None, "no OffsetOutOfRangeError below the low watermark"
    finally:
        c.close()
