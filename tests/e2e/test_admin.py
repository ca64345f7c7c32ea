"""Admin APIs through confluent-kafka's AdminClient and kafka-python's KafkaAdminClient:
topics, partitions, configs and the cluster."""

import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType

from helpers import (
    SEGMENT_BYTES,
    admin,
    admin_op,
    consumer,
    create_topic,
    describe_topic_configs,
    is_error,
    kp_admin,
    msg,
    partition_count,
    produce,
    producer,
    rec_from_confluent,
    result_of,
    topic_names,
    tps,
    wait_partition_count,
    wait_until,
    watermarks,
)

# The topic configs corelog supports, with the broker-wide defaults of the shared broker
# (its config file sets only log_segment_bytes).
SUPPORTED_DEFAULTS = {
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": str(SEGMENT_BYTES),
    "segment.ms": "604800000",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "cleanup.policy": "delete",
}


def source(entry):
    """A ConfigEntry's source as a ConfigSource, whether the client gives an enum or int."""
    return entry.source if isinstance(entry.source, ConfigSource) else ConfigSource(entry.source)


def admin_error(futures):
    """The KafkaError of the one future in `futures` (which must fail)."""
    [future] = futures.values()
    with pytest.raises(KafkaException) as info:
        future.result(timeout=15)
    return info.value.args[0]


def test_confluent_create_list_delete_recreate(broker, topic_name):
    a = admin(broker.bootstrap)
    topic = topic_name()
    result_of(a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                        config={"retention.ms": "3600000"})]))
    wait_partition_count(broker.bootstrap, topic, 3)
    md = a.list_topics(topic, timeout=10)
    for p in md.topics[topic].partitions.values():
        assert (p.leader, p.replicas, p.isrs) == (1, [1], [1]), p
    assert {b.id for b in md.brokers.values()} == {1}
    produce(broker.bootstrap, topic, [msg(b"gone soon", partition=p) for p in range(3)])

    result_of(a.delete_topics([topic], operation_timeout=10))
    wait_until(lambda: topic not in topic_names(broker.bootstrap), f"{topic} to disappear")
    # The same name again is a new, empty topic with the new partition count.
    create_topic(broker.bootstrap, topic, partitions=1)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    assert describe_topic_configs(broker.bootstrap, topic)["retention.ms"].value == \
        SUPPORTED_DEFAULTS["retention.ms"]


def test_default_partition_count(broker, topic_name):
    """CreateTopics with num_partitions -1 gets the broker's num_partitions (3 here)."""
    topic = topic_name()
    admin_op(broker.bootstrap, "create_topics", [NewTopic(topic)])
    wait_partition_count(broker.bootstrap, topic, 3)


def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    cluster = a.describe_cluster().result(timeout=15)
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cluster.controller.id == 1
    assert cluster.cluster_id


def test_admin_errors(broker, topic_name):
    a = admin(broker.bootstrap)
    topic = create_topic(broker.bootstrap, topic_name(), partitions=2)
    cases = [
        (a.create_topics([NewTopic(topic, 1, 1)]), KafkaError.TOPIC_ALREADY_EXISTS),
        (a.delete_topics([topic_name()]), KafkaError.UNKNOWN_TOPIC_OR_PART),
        (a.create_partitions([NewPartitions(topic, 1)]), KafkaError.INVALID_PARTITIONS),
        (a.create_partitions([NewPartitions(topic, 2)]), KafkaError.INVALID_PARTITIONS),
        (a.create_topics([NewTopic(topic_name(), 1, 1, config={"no.such.config": "1"})]),
         KafkaError.INVALID_CONFIG),
        (a.create_topics([NewTopic(topic_name(), 1, 1, config={"retention.ms": "soon"})]),
         KafkaError.INVALID_CONFIG),
        (a.create_topics([NewTopic("bad name!", 1, 1)]), KafkaError.TOPIC_EXCEPTION),
    ]
    for i, (futures, code) in enumerate(cases):
        err = admin_error(futures)
        assert err.code() == code, f"case {i}: {err}"
    assert partition_count(broker.bootstrap, topic) == 2


def test_kafka_python_admin_create_add_partitions_delete(broker, topic_name):
    topic = topic_name()
    ka = kp_admin(broker.bootstrap)
    try:
        ka.create_topics({topic: {"num_partitions": 2, "replication_factor": 1,
                                  "configs": {"retention.bytes": "1000000"}}},
                         wait_for_metadata=True)
        assert topic in ka.list_topics()
        ka.create_partitions({topic: 5})
        wait_partition_count(broker.bootstrap, topic, 5)
        [described] = ka.describe_topics([topic])
        assert sorted(p["partition_index"] for p in described["partitions"]) == list(range(5))
        # The new partitions take data like the old ones.
        produce(broker.bootstrap, topic, [msg(f"p{p}".encode(), partition=p) for p in range(5)])
        assert [watermarks(broker.bootstrap, topic, p) for p in range(5)] == [(0, 1)] * 5

        ka.delete_topics([topic])
        wait_until(lambda: topic not in ka.list_topics(), f"{topic} to disappear")
    finally:
        ka.close()


def test_add_partitions_while_producing_and_consuming(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(), partitions=2)
    stop = threading.Event()
    delivered, failures = [], []

    def produce_until_stopped():
        p = None
        try:
            # Null keys: librdkafka spreads them over every partition it knows of, and it
            # refreshes metadata every 500 ms, so it finds the new partitions by itself.
            p = producer(broker.bootstrap, **{"topic.metadata.refresh.interval.ms": 500,
                                              "linger.ms": 2})
            i = 0
            while not stop.is_set():
                value = f"m{i}".encode()
                p.produce(topic, value=value, on_delivery=lambda err, m, v=value: (
                    failures.append(err) if err else
                    delivered.append((m.partition(), m.offset(), v))))
                i += 1
                p.poll(0.005)
            assert p.flush(30) == 0
        except Exception as e:  # reported by the main thread
            failures.append(e)

    got = {}
    c = consumer(broker.bootstrap)

    def drain():
        """Read what the consumer has; False, so that `drain() or cond` tests cond."""
        for m in c.consume(num_messages=1000, timeout=0.1):
            if not m.error():
                r = rec_from_confluent(m)
                assert (r.partition, r.offset) not in got, f"record read twice: {r}"
                got[(r.partition, r.offset)] = r.value
        return False

    producer_thread = threading.Thread(target=produce_until_stopped)
    try:
        c.assign(tps([(topic, p, 0) for p in range(2)]))
        producer_thread.start()
        wait_until(lambda: drain() or len(got) >= 20, "records before adding partitions")

        admin_op(broker.bootstrap, "create_partitions", [NewPartitions(topic, 5)])
        wait_partition_count(broker.bootstrap, topic, 5)
        wait_until(lambda: drain() or {d[0] for d in delivered} >= {2, 3, 4},
                   "the running producer to write the new partitions")
        c.incremental_assign(tps([(topic, p, 0) for p in range(2, 5)]))
        time.sleep(0.3)  # keep producing while the consumer reads all five partitions
    finally:
        stop.set()
        producer_thread.join(60)
    try:
        assert not failures, failures[:5]
        expected = {(p, o): v for p, o, v in delivered}
        wait_until(lambda: drain() or len(got) >= len(expected),
                   f"the consumer to read all {len(expected)} records")
        assert got == expected
        for p, offsets in by_partition_offsets(got).items():
            assert offsets == list(range(len(offsets))), f"partition {p} has gaps"
    finally:
        c.close()


def by_partition_offsets(got):
    out = {}
    for p, o in sorted(got):
        out.setdefault(p, []).append(o)
    return out


def test_confluent_describe_and_incremental_alter_configs(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(),
                         config={"retention.ms": "3600000", "segment.bytes": "1048576"})
    configs = describe_topic_configs(broker.bootstrap, topic)
    assert set(SUPPORTED_DEFAULTS) <= set(configs), sorted(configs)
    for name in ("retention.ms", "segment.bytes"):
        assert source(configs[name]) == ConfigSource.DYNAMIC_TOPIC_CONFIG, configs[name]
        assert not configs[name].is_default and not configs[name].is_read_only
    assert (configs["retention.ms"].value, configs["segment.bytes"].value) == \
        ("3600000", "1048576")
    for name in ("retention.bytes", "cleanup.policy", "message.timestamp.type"):
        assert configs[name].value == SUPPORTED_DEFAULTS[name]
        assert source(configs[name]) != ConfigSource.DYNAMIC_TOPIC_CONFIG, configs[name]

    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    admin_op(broker.bootstrap, "incremental_alter_configs", [resource])
    configs = describe_topic_configs(broker.bootstrap, topic)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["max.message.bytes"].value == "2000"
    assert configs["segment.bytes"].value == "1048576"  # untouched: incremental
    assert configs["retention.ms"].value == SUPPORTED_DEFAULTS["retention.ms"]
    assert source(configs["retention.ms"]) != ConfigSource.DYNAMIC_TOPIC_CONFIG

    # The new max.message.bytes is enforced on the next produce.
    [small, big] = produce(broker.bootstrap, topic, [msg(b"s"), msg(b"b" * 5000)],
                           flush_each=True, errors_ok=True)
    assert small.offset == 0
    assert is_error(big, KafkaError.MSG_SIZE_TOO_LARGE), big


def test_kafka_python_describe_and_alter_configs(broker, topic_name):
    topic = create_topic(broker.bootstrap, topic_name(),
                         config={"message.timestamp.type": "LogAppendTime"})
    ka = kp_admin(broker.bootstrap)
    try:
        def describe(config_filter):
            out = ka.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, topic)],
                                      config_filter=config_filter)
            return {k: v["value"] for k, v in out["topic"][topic].items()}

        # By default only what the topic overrides.
        assert describe("modified") == {"message.timestamp.type": "LogAppendTime"}
        assert set(SUPPORTED_DEFAULTS) <= set(describe("all"))

        result = ka.alter_configs([KpConfigResource(
            ConfigResourceType.TOPIC, topic,
            configs={"retention.ms": "5000", "segment.bytes": "65536"})])
        assert result == {"topic": {topic: "OK"}}
        assert describe("modified") == {"message.timestamp.type": "LogAppendTime",
                                        "retention.ms": "5000", "segment.bytes": "65536"}
    finally:
        ka.close()
