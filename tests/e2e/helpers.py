"""Client helpers shared by the end-to-end tests (confluent-kafka, kafka-python).

The consumers made here never join a group: they are assigned partitions with explicit
offsets and never commit (test_groups.py has the group members). confluent-kafka's
Consumer refuses to start without a group.id, so one is set, with auto commit off; a
partition assigned an explicit or logical (beginning/end) offset never needs the group's
committed offsets.

Data acknowledged with acks=all is visible to consumers at once, but every read here
still polls until the expected count arrives, with a deadline: never sleep-and-assume.
"""

import subprocess
import sys
import time
from collections import namedtuple

import confluent_kafka
import kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

# Segment size of every test broker (its config file's log_segment_bytes): corelog
# preallocates each active segment, and 128 MiB (the default) for every partition of
# every test topic would take many GB of disk.
SEGMENT_BYTES = 8 << 20
TIMEOUT_S = 30.0
ADMIN_TIMEOUT_S = 15.0
UNUSED_GROUP = "corelog-e2e-no-group"  # set because confluent requires one; never joined

# One consumed record, the same whichever client read it.
# ts_type: "create" | "append"; headers: a tuple of (str, bytes | None).
Rec = namedtuple("Rec", "topic partition offset key value headers ts_type timestamp")
# One acknowledged produce.
Delivered = namedtuple("Delivered", "partition offset timestamp ts_type")

_CONFLUENT_TS_TYPES = {
    confluent_kafka.TIMESTAMP_CREATE_TIME: "create",
    confluent_kafka.TIMESTAMP_LOG_APPEND_TIME: "append",
}
_KAFKA_PYTHON_TS_TYPES = {0: "create", 1: "append"}


def now_ms():
    return int(time.time() * 1000)


def wait_until(predicate, what, timeout=TIMEOUT_S, interval=0.05):
    """Poll `predicate` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def msg(value, key=None, partition=None, headers=None, timestamp=None):
    """A message to produce (a dict of the fields that are set)."""
    m = {"value": value, "key": key}
    if partition is not None:
        m["partition"] = partition
    if headers is not None:
        m["headers"] = headers
    if timestamp is not None:
        m["timestamp"] = timestamp
    return m


def values(records):
    return [r.value for r in records]


def by_partition(records):
    """{partition: [records in offset order]}."""
    out = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.partition, []).append(r)
    return out


def assert_contiguous(records, start=0):
    """The records of one partition have exactly the offsets start, start+1, ..."""
    offsets = [r.offset for r in records]
    assert offsets == list(range(start, start + len(records))), offsets


# --- confluent-kafka ------------------------------------------------------------------------

def confluent_conf(bootstrap, **extra):
    return {"bootstrap.servers": bootstrap, **extra}


def admin(bootstrap):
    return AdminClient(confluent_conf(bootstrap))


def result_of(futures, timeout=ADMIN_TIMEOUT_S):
    """{key: future} from an AdminClient call -> {key: result}; raises the first error.

    The AdminClient must stay referenced until then: a collected client cancels its
    futures (_DESTROY). admin_op() takes care of that."""
    return {k: f.result(timeout=timeout) for k, f in futures.items()}


def admin_op(bootstrap, op, *args, **kwargs):
    """AdminClient.<op>(*args, **kwargs) on a new client: {key: result}."""
    client = admin(bootstrap)
    return result_of(getattr(client, op)(*args, **kwargs))


def create_topic(bootstrap, name, partitions=1, config=None):
    """Create a topic (confluent AdminClient) and wait until metadata shows it whole."""
    new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    admin_op(bootstrap, "create_topics", [new], operation_timeout=10)
    wait_partition_count(bootstrap, name, partitions)
    return name


def partition_count(bootstrap, topic):
    """Partitions of `topic` in the broker's metadata, None if absent."""
    md = admin(bootstrap).list_topics(topic=topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def topic_names(bootstrap):
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def wait_partition_count(bootstrap, topic, expected):
    wait_until(lambda: partition_count(bootstrap, topic) == expected,
               f"{topic} to have {expected} partitions in metadata")


def describe_topic_configs(bootstrap, topic):
    """{config name: ConfigEntry} of a topic (confluent AdminClient.describe_configs)."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin_op(bootstrap, "describe_configs", [resource])[resource]


def producer(bootstrap, **conf):
    return Producer(confluent_conf(bootstrap, **{"linger.ms": 5, **conf}))


def send_all(p, topic, messages, flush_each=False, errors_ok=False):
    """Produce `messages` (see msg()) on a confluent Producer; wait for every ack.

    Returns one Delivered per message, in send order. A delivery error fails the test,
    unless `errors_ok`: then that message's entry is its KafkaError.
    """
    messages = list(messages)
    delivered = [None] * len(messages)
    errors = []

    def on_delivery(i):
        def cb(err, m):
            if err is not None:
                delivered[i] = err
                if not errors_ok:
                    errors.append((i, err))
            else:
                ts_type, ts = m.timestamp()
                delivered[i] = Delivered(m.partition(), m.offset(), ts,
                                         _CONFLUENT_TS_TYPES.get(ts_type))
        return cb

    for i, m in enumerate(messages):
        p.produce(topic, on_delivery=on_delivery(i), **m)
        p.poll(0)
        if flush_each:
            assert p.flush(TIMEOUT_S) == 0, "flush timed out"
    left = p.flush(TIMEOUT_S)
    assert not errors, f"delivery errors: {errors[:5]}"
    assert left == 0, f"{left} messages still unacknowledged after {TIMEOUT_S} s"
    return delivered


def produce(bootstrap, topic, messages, flush_each=False, errors_ok=False, **conf):
    """send_all() on a new confluent Producer built with `conf`."""
    return send_all(producer(bootstrap, **conf), topic, messages, flush_each, errors_ok)


def rec_from_confluent(m):
    ts_type, ts = m.timestamp()
    return Rec(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
               tuple(m.headers() or ()), _CONFLUENT_TS_TYPES.get(ts_type), ts)


def consumer(bootstrap, **conf):
    """A confluent Consumer for manual assignment: it never joins a group or commits."""
    base = {
        "group.id": UNUSED_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }
    return Consumer(confluent_conf(bootstrap, **{**base, **conf}))


def tps(assignments):
    """[(topic, partition, offset)] -> [TopicPartition]."""
    return [TopicPartition(t, p, o) for t, p, o in assignments]


def poll_records(c, count, timeout=TIMEOUT_S, settle=0.0):
    """Poll a confluent Consumer until `count` records arrived; then, for `settle`
    seconds more, check that no further record arrives."""
    out, errors = [], []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"got {len(out)} of {count} records in {timeout} s; "
                                 f"consumer errors: {errors[:5]}; last: {out[-3:]}")
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(m.error())
            continue
        out.append(rec_from_confluent(m))
    settle_until = time.monotonic() + settle
    while time.monotonic() < settle_until:
        m = c.poll(0.1)
        if m is not None and not m.error():
            raise AssertionError(f"unexpected record after the expected {count}: "
                                 f"{rec_from_confluent(m)}")
    return out


def poll_error(c, code, timeout=TIMEOUT_S):
    """Poll a confluent Consumer until it reports error `code`; fail if a record comes
    first. Other errors (say, about a group coordinator) are only listed on failure."""
    others = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if not m.error():
            raise AssertionError(f"expected error {code}, got a record: {rec_from_confluent(m)}")
        if m.error().code() == code:
            return m.error()
        others.append(m.error())
    raise AssertionError(f"no consumer error {code} within {timeout} s; other errors: {others}")


def consume(bootstrap, assignments, count, settle=0.0, **conf):
    """Assign [(topic, partition, offset)] on a new confluent Consumer; read `count`."""
    c = consumer(bootstrap, **conf)
    try:
        c.assign(tps(assignments))
        return poll_records(c, count, settle=settle)
    finally:
        c.close()


def watermarks(bootstrap, topic, partition):
    """(low, high) from the broker (confluent get_watermark_offsets, not cached)."""
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10,
                                       cached=False)
    finally:
        c.close()


def wait_watermarks(bootstrap, topic, partition, expected):
    wait_until(lambda: watermarks(bootstrap, topic, partition) == expected,
               f"watermarks of {topic}/{partition} to be {expected}")


def is_error(err, code):
    return isinstance(err, KafkaError) and err.code() == code


# --- kafka-python ---------------------------------------------------------------------------

def kp_producer(bootstrap, **kw):
    """kafka-python 3 KafkaProducer; its defaults are acks=all and idempotence on."""
    return kafka.KafkaProducer(bootstrap_servers=bootstrap, **{"linger_ms": 5, **kw})


def kp_send_all(p, topic, messages):
    """Like send_all(), for a kafka-python KafkaProducer."""
    futures = []
    for m in messages:
        futures.append(p.send(topic, value=m.get("value"), key=m.get("key"),
                              partition=m.get("partition"), headers=m.get("headers"),
                              timestamp_ms=m.get("timestamp")))
    p.flush(timeout=TIMEOUT_S)
    out = []
    for f in futures:
        md = f.get(timeout=TIMEOUT_S)
        out.append(Delivered(md.partition, md.offset, md.timestamp, None))
    return out


def kp_produce(bootstrap, topic, messages, **kw):
    p = kp_producer(bootstrap, **kw)
    try:
        return kp_send_all(p, topic, messages)
    finally:
        p.close(timeout=10)


def kp_consumer(bootstrap, **kw):
    """kafka-python KafkaConsumer without a group (group_id=None)."""
    base = {
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 100,
    }
    return kafka.KafkaConsumer(bootstrap_servers=bootstrap, **{**base, **kw})


def kp_assign(c, assignments):
    """Assign [(topic, partition, offset)] and seek each partition to its offset."""
    parts = [kafka.TopicPartition(t, p) for t, p, _ in assignments]
    c.assign(parts)
    for tp, (_, _, offset) in zip(parts, assignments, strict=True):
        c.seek(tp, offset)
    return parts


def rec_from_kafka_python(r):
    return Rec(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()),
               _KAFKA_PYTHON_TS_TYPES.get(r.timestamp_type), r.timestamp)


def kp_poll_records(c, count, timeout=TIMEOUT_S):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"kafka-python got {len(out)} of {count} records in "
                                 f"{timeout} s; last: {out[-3:]}")
        for batch in c.poll(timeout_ms=200).values():
            out.extend(rec_from_kafka_python(r) for r in batch)
    return out


def kp_consume(bootstrap, assignments, count, **kw):
    c = kp_consumer(bootstrap, **kw)
    try:
        kp_assign(c, assignments)
        return kp_poll_records(c, count)
    finally:
        c.close()


def kp_watermarks(bootstrap, topic, partitions):
    """({partition: beginning offset}, {partition: end offset}) from kafka-python."""
    c = kp_consumer(bootstrap)
    try:
        parts = [kafka.TopicPartition(topic, p) for p in partitions]
        begin = c.beginning_offsets(parts, timeout_ms=10000)
        end = c.end_offsets(parts, timeout_ms=10000)
        return ({tp.partition: o for tp, o in begin.items()},
                {tp.partition: o for tp, o in end.items()})
    finally:
        c.close()


def kp_admin(bootstrap):
    return kafka.KafkaAdminClient(bootstrap_servers=bootstrap)


def kafka_python_bytes(request, version, correlation_id):
    """A kafka-python protocol request encoded whole (size, header with client id "cid",
    body): the reference the hand-written kwire encoders are checked against."""
    request.with_header(correlation_id=correlation_id, client_id="cid")
    return bytes(request.encode(version=version, header=True, framed=True))


# --- both clients ---------------------------------------------------------------------------

def consume_both(bootstrap, assignments, count):
    """Read the same partitions with confluent-kafka and kafka-python; both must see the
    same records (per partition, in offset order). Returns them sorted by partition."""
    ours = sorted(consume(bootstrap, assignments, count), key=lambda r: (r.partition, r.offset))
    theirs = sorted(kp_consume(bootstrap, assignments, count),
                    key=lambda r: (r.partition, r.offset))
    assert ours == theirs, "confluent-kafka and kafka-python read different records"
    return ours


# --- kcat -----------------------------------------------------------------------------------

def kcat(kcat_bin, bootstrap, *args, stdin=None, timeout=TIMEOUT_S):
    """Run `kcat -b bootstrap ARGS`; it must exit 0. Returns its stdout."""
    done = subprocess.run([kcat_bin, "-b", bootstrap, *args], input=stdin,
                          capture_output=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"kcat {' '.join(args)} exited {done.returncode}: " \
        f"{done.stderr.decode(errors='replace')}"
    return done.stdout.decode()


def rss_mib(broker):
    """The broker process's resident memory (VmRSS), in MiB."""
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def resume_abandoned_join(consumer, name):
    """Works around a kafka-python 3.0.x bug (still in its main branch): a poll() whose
    timeout ends during a rebalance leaves the JoinGroup/SyncGroup task running, for the
    next poll to await, but only if need_rejoin() is still true then. When the rebalance
    came from a metadata change (partitions added), the leader's own assignment has
    already made need_rejoin() false, so the finished task is never awaited: the member
    keeps its old partitions for ever while the group thinks it has the new ones. Seen in
    CI under load as a member stuck on [] or [0, 1]. Apache Kafka's Java client checks
    rejoinNeededOrPending() (rejoin needed or a join future pending), as kafka-python
    itself did before its async rewrite; this asks for the rejoin that check would make.
    """
    coordinator = consumer._coordinator
    if coordinator._join_task is not None and not coordinator.need_rejoin():
        print(f"{name}: kafka-python left a join unfinished; asking it to rejoin",
              file=sys.stderr)
        coordinator.request_rejoin()
