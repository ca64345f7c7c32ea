"""Clients beyond confluent-kafka and kafka-python: aiokafka (asyncio) and kcat (the
`kcat_bin` fixture is in conftest.py)."""

import asyncio
import json

import aiokafka
from aiokafka.structs import TopicPartition

from helpers import (
    TIMEOUT_S,
    assert_contiguous,
    by_partition,
    consume,
    create_topic,
    kcat,
    rec_from_kafka_python,
)


def test_aiokafka_round_trip(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(), partitions=2)
    sent = [(i % 2, f"k{i}".encode(), f"aio-{i}".encode(), [("n", b"%d" % i)])
            for i in range(60)]

    async def round_trip():
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                                             enable_idempotence=True, compression_type="gzip")
        try:
            await producer.start()
            acked = [await producer.send_and_wait(topic, value=v, key=k, partition=p,
                                                  headers=h) for p, k, v, h in sent]
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                                             enable_auto_commit=False,
                                             auto_offset_reset="earliest")
        parts = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(parts)
        got = []
        try:
            await consumer.start()
            await consumer.seek_to_beginning(*parts)
            async with asyncio.timeout(TIMEOUT_S):
                while len(got) < len(sent):
                    batches = await consumer.getmany(timeout_ms=200)
                    got.extend(rec_from_kafka_python(r) for rs in batches.values() for r in rs)
            ends = await consumer.end_offsets(parts)
        finally:
            await consumer.stop()
        return acked, got, ends

    acked, got, ends = asyncio.run(round_trip())
    assert [(m.partition, m.offset) for m in acked[:4]] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert {tp.partition: o for tp, o in ends.items()} == {0: 30, 1: 30}
    parts = by_partition(got)
    for p in (0, 1):
        assert_contiguous(parts[p])
        mine = [s for s in sent if s[0] == p]
        assert [(r.key, r.value, r.headers) for r in parts[p]] == \
            [(k, v, tuple(h)) for _, k, v, h in mine]
    # The same records through confluent-kafka.
    assert sorted(r.value for r in consume(broker.bootstrap, [(topic, 0, 0), (topic, 1, 0)],
                                           60)) == sorted(v for _, _, v, _ in sent)


def test_kcat_produce_consume_and_metadata(broker, topic_name, kcat_bin):
    # kcat -P on a topic that does not exist yet: the broker auto-creates it, with the
    # broker's num_partitions (3 for the shared broker).
    topic = topic_name()
    lines = [f"key{i % 5}:line {i}" for i in range(100)]
    kcat(kcat_bin, broker.bootstrap, "-P", "-t", topic, "-K", ":",
         stdin="\n".join(lines).encode() + b"\n")

    out = kcat(kcat_bin, broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%p %o %k:%s\n")
    consumed = [line.split(" ", 2) for line in out.splitlines()]
    assert sorted(kv for _, _, kv in consumed) == sorted(lines)
    per_partition = {}
    for p, o, kv in consumed:
        per_partition.setdefault(int(p), []).append((int(o), kv))
    for entries in per_partition.values():
        offsets = [o for o, _ in entries]
        assert offsets == list(range(len(entries)))
    # Same key, same partition, in the order produced.
    for k in range(5):
        mine = [(int(p), kv) for p, _, kv in consumed if kv.startswith(f"key{k}:")]
        assert len({p for p, _ in mine}) == 1
        assert [kv for _, kv in mine] == [line for line in lines
                                           if line.startswith(f"key{k}:")]

    metadata = json.loads(kcat(kcat_bin, broker.bootstrap, "-L", "-J", "-t", topic))
    assert [(b["id"], b["name"]) for b in metadata["brokers"]] == [(1, broker.bootstrap)]
    [t] = metadata["topics"]
    assert t["topic"] == topic and not t.get("error")
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    assert {p["leader"] for p in t["partitions"]} == {1}
