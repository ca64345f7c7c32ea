"""What survives a restart, and what retention deletes. Each test has its own broker."""

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from helpers import (
    admin_op,
    assert_contiguous,
    consume,
    create_topic,
    describe_topic_configs,
    kp_admin,
    msg,
    now_ms,
    partition_count,
    produce,
    topic_names,
    wait_until,
    watermarks,
)

RECORD_BYTES = 1000


def snapshot(bootstrap, topics):
    """Everything a restart must keep: topics, partition counts, topic configs overridden
    on the topic, watermarks and every record."""
    state = {"topics": set(topics) & topic_names(bootstrap)}
    for topic in sorted(state["topics"]):
        n = partition_count(bootstrap, topic)
        marks = [watermarks(bootstrap, topic, p) for p in range(n)]
        configs = {k: e.value for k, e in describe_topic_configs(bootstrap, topic).items()}
        records = consume(bootstrap, [(topic, p, lo) for p, (lo, _) in enumerate(marks)],
                          sum(hi - lo for lo, hi in marks), settle=0.3)
        state[topic] = {"partitions": n, "watermarks": marks, "configs": configs,
                        "records": sorted(records, key=lambda r: (r.partition, r.offset))}
    return state


def test_restart_keeps_acknowledged_records_topics_partitions_and_configs(
        broker_factory, topic_name):
    b = broker_factory()
    multi = create_topic(b.bootstrap, topic_name(), partitions=3,
                         config={"retention.ms": "86400000",
                                 "message.timestamp.type": "LogAppendTime"})
    segmented = create_topic(b.bootstrap, topic_name(), config={"segment.bytes": "65536"})
    ka = kp_admin(b.bootstrap)
    try:
        ka.create_partitions({multi: 4})
    finally:
        ka.close()
    admin_op(b.bootstrap, "incremental_alter_configs", [ConfigResource(
        ResourceType.TOPIC, segmented, incremental_configs=[ConfigEntry(
            "max.message.bytes", "500000", incremental_operation=AlterConfigOpType.SET)])])

    acked = produce(b.bootstrap, multi, [
        msg(f"{p}-{i}".encode(), key=f"k{i}".encode(), partition=p, headers=[("i", b"%d" % i)])
        for p in range(4) for i in range(50)], acks="all")
    acked += produce(b.bootstrap, segmented, [
        msg(bytes([i % 251]) * RECORD_BYTES, timestamp=1_600_000_000_000 + i)
        for i in range(300)], acks="all", **{"enable.idempotence": True, "batch.size": 16384})
    assert len(acked) == 500
    assert len(b.segment_base_offsets(segmented, 0)) > 1, "expected several segments"
    admin_op(b.bootstrap, "delete_records", [TopicPartition(multi, 1, 10)])

    before = snapshot(b.bootstrap, [multi, segmented])
    assert before[multi]["partitions"] == 4
    assert before[multi]["watermarks"][1] == (10, 50)
    assert before[segmented]["watermarks"] == [(0, 300)]

    b.restart()
    assert snapshot(b.bootstrap, [multi, segmented]) == before

    # Appends continue after the old end, and survive a second restart too.
    [d] = produce(b.bootstrap, segmented, [msg(b"after restart")], acks="all")
    assert (d.partition, d.offset) == (0, 300)
    b.restart()
    tail = consume(b.bootstrap, [(segmented, 0, 299)], 2, settle=0.3)
    assert [r.value for r in tail] == [bytes([299 % 251]) * RECORD_BYTES, b"after restart"]


def fill_segments(bootstrap, topic, count, timestamp=None):
    """`count` records of RECORD_BYTES, each in its own batch, so that a small
    segment.bytes rolls a segment every few records."""
    produce(bootstrap, topic, [msg(b"r" * RECORD_BYTES, timestamp=timestamp)
                               for _ in range(count)], flush_each=True, **{"linger.ms": 0})


def wait_retention(b, topic, count):
    """Wait until retention moved the low watermark above 0; check the partition's
    segment files and what a consumer reads. Returns the low watermark."""
    low = wait_until(lambda: watermarks(b.bootstrap, topic, 0)[0],
                     "retention to move the low watermark above 0")
    assert watermarks(b.bootstrap, topic, 0) == (low, count)
    # The oldest segment files are gone; the first remaining one starts at the low
    # watermark (Kafka's log start offset after retention).
    def first_segment_is_low():
        bases = b.segment_base_offsets(topic, 0)
        return bases and bases[0] == low

    wait_until(first_segment_is_low, f"segment files to start at offset {low}")
    records = consume(b.bootstrap, [(topic, 0, 0)], count - low, settle=0.3)
    assert_contiguous(records, start=low)
    return low


def test_retention_by_time_deletes_old_segments(broker_factory, topic_name):
    # Broker-wide settings from the config file: small segments, 60 s retention.
    b = broker_factory(config={"log_retention_check_interval_ms": 200,
                               "log_segment_bytes": 4096, "log_retention_ms": 60000})
    topic = create_topic(b.bootstrap, topic_name())
    # Records that expire 5 s after they are written: long enough to see the segments
    # before a retention pass (every 200 ms) may delete them.
    fill_segments(b.bootstrap, topic, 40, timestamp=now_ms() - 55_000)
    assert len(b.segment_base_offsets(topic, 0)) > 3, "expected several segments"

    low = wait_retention(b, topic, 40)
    # Every closed segment was expired; only the active one remains.
    assert len(b.segment_base_offsets(topic, 0)) == 1
    # New records (current timestamps) are kept.
    [d] = produce(b.bootstrap, topic, [msg(b"fresh")])
    assert d.offset == 40
    assert consume(b.bootstrap, [(topic, 0, 40)], 1)[0].value == b"fresh"
    assert watermarks(b.bootstrap, topic, 0) == (low, 41)


def test_retention_by_size_deletes_old_segments(broker_factory, topic_name):
    # Topic-level settings: 4 KiB segments; once they are written, keep about 8 KiB
    # (set afterwards, so that no retention pass runs while they are written).
    b = broker_factory(config={"log_retention_check_interval_ms": 200})
    topic = create_topic(b.bootstrap, topic_name(), config={"segment.bytes": "4096"})
    fill_segments(b.bootstrap, topic, 40)
    segments = len(b.segment_base_offsets(topic, 0))
    assert segments > 3, "expected several segments"
    admin_op(b.bootstrap, "incremental_alter_configs", [ConfigResource(
        ResourceType.TOPIC, topic, incremental_configs=[ConfigEntry(
            "retention.bytes", "8192", incremental_operation=AlterConfigOpType.SET)])])

    low = wait_retention(b, topic, 40)
    kept = 40 - low
    # At least retention.bytes is kept (Kafka deletes a segment only if the log still
    # holds retention.bytes without it), and well under half the log remains.
    assert kept * (RECORD_BYTES + 100) >= 8192, kept
    assert kept <= 20, kept
    assert len(b.segment_base_offsets(topic, 0)) < segments
    # Retention changed no record that remains.
    assert {r.value for r in consume(b.bootstrap, [(topic, 0, low)], kept)} == \
        {b"r" * RECORD_BYTES}
