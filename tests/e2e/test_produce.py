"""Producing: keys and partitions, record fields, compression codecs, concurrent producers."""

import threading

import pytest

from helpers import (
    assert_contiguous,
    by_partition,
    consume,
    consume_both,
    create_topic,
    kp_producer,
    kp_send_all,
    msg,
    now_ms,
    produce,
    producer,
    send_all,
    values,
    watermarks,
)


def test_same_key_same_partition_in_order(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(), partitions=4)
    keys = [f"key-{k}".encode() for k in range(8)]
    sent = [msg(f"{k.decode()}:{i}".encode(), key=k) for i in range(25) for k in keys]
    delivered = produce(broker.bootstrap, topic, sent)

    # Every key went to one partition, with increasing offsets in send order.
    partition_of = {}
    last_offset = {}
    for m, d in zip(sent, delivered, strict=True):
        assert partition_of.setdefault(m["key"], d.partition) == d.partition
        assert d.offset > last_offset.get(m["key"], -1)
        last_offset[m["key"]] = d.offset
    assert len(set(partition_of.values())) > 1, "8 keys all hashed to one partition"

    records = consume(broker.bootstrap, [(topic, p, 0) for p in range(4)], len(sent),
                      settle=0.5)
    for recs in by_partition(records).values():
        assert_contiguous(recs)
    for k in keys:
        got = [r for r in sorted(records, key=lambda r: r.offset) if r.key == k]
        assert {r.partition for r in got} == {partition_of[k]}
        assert values(got) == [f"{k.decode()}:{i}".encode() for i in range(25)]


def test_explicit_partition(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(), partitions=3)
    # Keys that would hash elsewhere: the explicit partition wins.
    sent = [msg(f"v{i}".encode(), key=f"k{i}".encode(), partition=2) for i in range(30)]
    delivered = produce(broker.bootstrap, topic, sent)
    assert [d.partition for d in delivered] == [2] * 30
    assert [d.offset for d in delivered] == list(range(30))

    records = consume(broker.bootstrap, [(topic, 2, 0)], 30)
    assert values(records) == [m["value"] for m in sent]
    assert_contiguous(records)
    # Nothing leaked into the other partitions.
    assert [watermarks(broker.bootstrap, topic, p) for p in (0, 1)] == [(0, 0), (0, 0)]


def test_headers_null_keys_values_and_create_time(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name())
    headers = [("h1", b"a"), ("h1", b"b"), ("empty", b""), ("null", None), ("ünï", b"\x00\xff")]
    sent = [
        msg(b"null key"),
        msg(None, key=b"null value"),
        msg(None),
        msg(b"", key=b""),  # empty is not null
        msg(b"with headers", key=b"h", headers=headers),
        msg(b"old timestamp", timestamp=1_000_000_000_123),
        msg(b"future timestamp", timestamp=4_000_000_000_000),
        msg(b"x" * 100_000, key=b"big"),
    ]
    before = now_ms()
    produce(broker.bootstrap, topic, sent)
    after = now_ms()

    records = consume_both(broker.bootstrap, [(topic, 0, 0)], len(sent))
    assert [(r.key, r.value) for r in records] == [(m["key"], m["value"]) for m in sent]
    assert records[4].headers == tuple(headers)
    assert all(r.headers == () for i, r in enumerate(records) if i != 4)
    assert {r.ts_type for r in records} == {"create"}
    assert records[5].timestamp == 1_000_000_000_123
    assert records[6].timestamp == 4_000_000_000_000
    # Without a timestamp the producer stamps the send time.
    for r in records[:5] + records[7:]:
        assert before - 1000 <= r.timestamp <= after + 1000, r


def test_log_append_time(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(),
                         config={"message.timestamp.type": "LogAppendTime"})
    sent = [msg(f"v{i}".encode(), timestamp=1_000_000_000_000 + i) for i in range(5)]
    sent.append(msg(b"no timestamp"))
    before = now_ms()
    delivered = produce(broker.bootstrap, topic, sent)
    after = now_ms()

    def broker_time(ts):
        return before - 2000 <= ts <= after + 2000

    # The produce response carries the broker's append time.
    for d in delivered:
        assert d.ts_type == "append" and broker_time(d.timestamp), d
    records = consume_both(broker.bootstrap, [(topic, 0, 0)], len(sent))
    for r in records:
        assert r.ts_type == "append" and broker_time(r.timestamp), r
    assert values(records) == [m["value"] for m in sent]


@pytest.mark.parametrize("acks", [0, 1])
def test_acks_0_and_1(broker, topic_name, acks):
    """acks=1 records become visible after the broker's background flush; acks=0 gets no
    response at all (a response would desynchronise the client's connection)."""
    topic = create_topic(broker.bootstrap, topic_name())
    sent = [msg(f"acks{acks}-{i}".encode()) for i in range(9)]
    # One request per record, on one connection.
    produce(broker.bootstrap, topic, sent, acks=acks, flush_each=True)
    records = consume(broker.bootstrap, [(topic, 0, 0)], 9, settle=0.5)
    assert values(records) == [m["value"] for m in sent]
    assert_contiguous(records)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches(broker, topic_name, codec):
    topic = create_topic(broker.bootstrap, topic_name())
    # Compressible values, with keys and headers, in few large batches.
    first = [msg(f"confluent {codec} record {i:05d} ".encode() * 20, key=f"k{i % 7}".encode(),
                 headers=[("i", str(i).encode())]) for i in range(300)]
    produce(broker.bootstrap, topic, first, **{"compression.type": codec, "linger.ms": 100})
    # The same codec from kafka-python's own compressor.
    second = [msg(f"kafka-python {codec} record {i:05d} ".encode() * 20, key=b"kp")
              for i in range(100)]
    p = kp_producer(broker.bootstrap, compression_type=codec, linger_ms=50)
    try:
        kp_send_all(p, topic, second)
    finally:
        p.close(timeout=10)

    records = consume_both(broker.bootstrap, [(topic, 0, 0)], 400)
    assert_contiguous(records)
    assert [(r.key, r.value) for r in records] == [(m["key"], m["value"]) for m in first + second]
    assert [r.headers for r in records[:300]] == [tuple(m["headers"]) for m in first]


def test_concurrent_producers_one_partition(broker, topic_name):
    """A confluent-kafka and a kafka-python producer (both idempotent) write one partition
    at once; confluent-kafka and kafka-python consumers then read the same order."""
    topic = create_topic(broker.bootstrap, topic_name())
    n = 400
    start = threading.Barrier(2)
    results, failures = {}, []

    def run(name, make, send):
        try:
            p = make()
            batch = [msg(f"{name}-{i}".encode(), partition=0) for i in range(n)]
            start.wait(10)
            results[name] = send(p, topic, batch)
            if hasattr(p, "close"):
                p.close()
        except Exception as e:  # reported by the main thread
            failures.append((name, e))

    confluent = threading.Thread(target=run, args=(
        "confluent",
        lambda: producer(broker.bootstrap, **{"enable.idempotence": True, "linger.ms": 1}),
        send_all))
    kp = threading.Thread(target=run, args=(
        "kafka-python", lambda: kp_producer(broker.bootstrap, linger_ms=1), kp_send_all))
    for t in (confluent, kp):
        t.start()
    for t in (confluent, kp):
        t.join(60)
    assert not failures, failures
    offsets = sorted(d.offset for r in results.values() for d in r)
    assert offsets == list(range(2 * n)), "acknowledged offsets are not 0..2n-1 exactly once"

    records = consume_both(broker.bootstrap, [(topic, 0, 0)], 2 * n)
    assert_contiguous(records)
    for name in ("confluent", "kafka-python"):
        mine = [r.value for r in records if r.value.startswith(name.encode() + b"-")]
        assert mine == [f"{name}-{i}".encode() for i in range(n)], f"{name} order broken"
        # Each producer's acknowledged offsets point at its own records.
        assert [records[d.offset].value for d in results[name]] == mine
