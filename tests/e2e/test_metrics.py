"""`/metrics` (Prometheus text format) while real clients produce, consume in a group
and commit: the figures move by what the clients did."""

import re
import urllib.error
import urllib.request

from confluent_kafka import Consumer

from conftest import free_port
from helpers import confluent_conf, create_topic, msg, poll_records, produce, wait_until

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    """{(name, frozenset(labels)): value} of every sample; checks the format on the way."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in typed, f"{name} typed twice"
            typed.add(name)
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"{name} has no TYPE line"
        out[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return out


def total(metrics, name, **labels):
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


def test_metrics_move_with_produce_consume_and_groups(broker_factory, topic_name):
    port = free_port()
    b = broker_factory(shards=2, config={"metrics_listen": f"127.0.0.1:{port}",
                                         "memory_trim_interval_ms": 500})
    topic = create_topic(b.bootstrap, topic_name(), partitions=4)
    wait_until(lambda: sum(1 for (n, _), v in scrape(port).items()
                           if n == "corelog_shard_uptime_seconds" and v > 0) == 2,
               "both shards' first snapshot")
    before = scrape(port)
    assert total(before, "corelog_partition_records_in_total", topic=topic) == 0

    # Idempotent, so that a retried batch is not stored (and counted) twice.
    sent = produce(b.bootstrap, topic, [msg(f"v{i}".encode(), partition=i % 4)
                                        for i in range(400)], **{"enable.idempotence": True})
    assert len(sent) == 400
    group = f"g-{topic}"
    c = Consumer(confluent_conf(b.bootstrap, **{
        "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    try:
        c.subscribe([topic])
        assert len(poll_records(c, 400)) == 400
        c.commit(asynchronous=False)

        # Snapshots are published every second.
        def moved():
            m = scrape(port)
            return m if total(m, "corelog_partition_records_out_total", topic=topic) >= 400 \
                and total(m, "corelog_requests_total", api="OffsetCommit") >= 1 else None
        after = wait_until(moved, "the fetches counted")
        connections = total(after, "corelog_connections")
    finally:
        c.close()

    def grew(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    # Per partition: what went in, how far the log reaches, what was read.
    assert grew("corelog_partition_records_in_total", topic=topic) == 400
    assert grew("corelog_partition_bytes_in_total", topic=topic) > 400 * 2
    for p in range(4):
        assert total(after, "corelog_partition_high_watermark", topic=topic,
                     partition=str(p)) == 100
        assert total(after, "corelog_partition_log_end_offset", topic=topic,
                     partition=str(p)) == 100
        assert total(after, "corelog_partition_log_start_offset", topic=topic,
                     partition=str(p)) == 0
    # What the fetch answers sent: each record once (one member, read from the start).
    assert grew("corelog_partition_records_out_total", topic=topic) == 400
    assert grew("corelog_partition_bytes_out_total", topic=topic) == \
        grew("corelog_partition_bytes_in_total", topic=topic)
    # Requests by API, with latencies; acks=all produces waited for fdatasyncs.
    assert grew("corelog_requests_total", api="Produce") >= 1
    assert grew("corelog_requests_total", api="Fetch") >= 1
    assert grew("corelog_requests_total", api="JoinGroup") >= 1
    assert grew("corelog_requests_total", api="OffsetCommit") >= 1
    assert grew("corelog_produce_durable_seconds_count") >= 1
    assert grew("corelog_fdatasync_duration_seconds_count") >= 1
    assert grew("corelog_fdatasync_bytes_total") > 0
    assert total(after, "corelog_requests_failed_total") == 0
    # Groups, connections, the mesh between the two shards, the cores' time.
    assert total(after, "corelog_groups") >= 1
    assert grew("corelog_group_rebalances_total") >= 1
    assert connections >= 1
    assert grew("corelog_connections_accepted_total") >= 2
    assert grew("corelog_mesh_messages_sent_total") > 0
    assert total(after, "corelog_mesh_messages_received_total") > 0
    assert grew("corelog_task_queue_runtime_seconds_total", queue="default") > 0
    assert grew("corelog_tail_cache_hits_total") + grew("corelog_tail_cache_misses_total") > 0
    assert total(after, "corelog_process_resident_bytes") > 1 << 20
    assert total(after, "corelog_heap_allocated_bytes") > 0

    # Only GET /metrics is served.
    for path, code in (("/", 404), ("/metrics/x", 404)):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
            raise AssertionError(f"{path} was served")
        except urllib.error.HTTPError as e:
            assert e.code == code
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="POST", data=b"")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST was served")
    except urllib.error.HTTPError as e:
        assert e.code == 405
