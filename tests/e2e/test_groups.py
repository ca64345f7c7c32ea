"""Consumer groups: membership, assignment and rebalances, committed offsets, admin, and
the coordinator's fencing, through stock clients (confluent-kafka, kafka-python, aiokafka,
kcat) and, for exact error codes, the hand-written kwire.

Every member runs with session.timeout.ms 6000 (the broker's default minimum) and
heartbeats every 500 ms, so a rebalance takes a second or two; a member must keep polling
to take part in one, so each member of a multi-member group is polled by its own thread
(GroupMember). Groups get names of their own per test (`group_name`); the shared broker
has two shards, so some groups are coordinated by each.
"""

import asyncio
import concurrent.futures
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import aiokafka
import kafka
import kafka.errors
import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import NewPartitions
from kafka.admin import MemberToRemove
from kafka.structs import OffsetAndMetadata

import kwire
from helpers import (
    TIMEOUT_S,
    admin,
    admin_op,
    confluent_conf,
    create_topic,
    kafka_python_bytes,
    kcat,
    kp_admin,
    msg,
    poll_records,
    produce,
    rec_from_confluent,
    rec_from_kafka_python,
    resume_abandoned_join,
    wait_until,
)

SESSION_MS = 6000
HEARTBEAT_MS = 500
# max.poll.interval.ms: librdkafka's (and kafka-python's) JoinGroup rebalance timeout.
REBALANCE_MS = 10000
NO_OFFSET = -1  # OffsetFetch's offset where nothing is committed
SETTLE_S = 0.5  # after the expected records, how long none more may arrive


@pytest.fixture
def group_name(topic_name):
    """group_name() -> a new group id, unique in the session, on every call."""
    return lambda: f"g-{topic_name()}"


def group_conf(bootstrap, group, **extra):
    """A confluent consumer that joins `group` (no auto commit unless asked)."""
    return confluent_conf(bootstrap, **{
        "group.id": group,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "max.poll.interval.ms": REBALANCE_MS,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        **extra,
    })


def kafka_python_group_conf(bootstrap, group, **extra):
    """The same settings for kafka-python's and aiokafka's consumers."""
    return {"bootstrap_servers": bootstrap, "group_id": group,
            "session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": HEARTBEAT_MS,
            "max_poll_interval_ms": REBALANCE_MS, "auto_offset_reset": "earliest",
            "enable_auto_commit": False, "fetch_max_wait_ms": 100, **extra}


@contextmanager
def group_consumer(bootstrap, group, topics, **conf):
    """A confluent Consumer subscribed to `topics` in `group`, closed on exit (which
    leaves the group). For a single member polled by the test itself."""
    c = Consumer(group_conf(bootstrap, group, **conf))
    try:
        c.subscribe(topics)
        yield c
    finally:
        c.close()


def fill(bootstrap, topic, partitions, count, tag="r"):
    """Produce `count` records to each partition; returns {(partition, offset): value}."""
    delivered = produce(bootstrap, topic, [msg(f"{tag}-{p}-{i}".encode(), partition=p)
                                           for p in range(partitions) for i in range(count)])
    return {(d.partition, d.offset): f"{tag}-{d.partition}-{i % count}".encode()
            for i, d in enumerate(delivered)}


def positions(records):
    """Sorted (partition, offset) of records; a duplicate shows up twice."""
    return sorted((r.partition, r.offset) for r in records)


def next_offsets(records):
    """{(topic, partition): last offset read + 1}: what a consumer commits."""
    out = {}
    for r in records:
        out[(r.topic, r.partition)] = max(out.get((r.topic, r.partition), 0), r.offset + 1)
    return out


def committed(bootstrap, group, topic, partitions):
    """{partition: (offset, metadata)} committed by `group` (kafka-python's admin,
    OffsetFetch); offset NO_OFFSET where there is none. The metadata is as its committer
    meant it (see as_meant)."""
    ka = kp_admin(bootstrap)
    try:
        result = ka.list_group_offsets({group: [kafka.TopicPartition(topic, p)
                                                for p in partitions]})
    finally:
        ka.close()
    return {p: (o, as_meant(m)) for p, (o, m) in kp_group_offsets(result)[group].items()}


def confluent_committed(bootstrap, group, topic, partitions):
    """committed(), through confluent's AdminClient (list_consumer_group_offsets): offset
    OFFSET_INVALID where there is none. Only for metadata committed by confluent-kafka,
    which reads metadata as a C string (it reads past the end of other clients')."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    [result] = admin_op(bootstrap, "list_consumer_group_offsets", [request]).values()
    return {tp.partition: (tp.offset, tp.metadata or "") for tp in result.topic_partitions}


def confluent_offsets(offsets, metadata=None):
    """{(topic, partition): offset} -> [TopicPartition] for confluent's commit(); None
    commits no metadata (null)."""
    extra = () if metadata is None else (metadata,)
    return [TopicPartition(t, p, o, *extra) for (t, p), o in offsets.items()]


def sent_by_confluent(metadata):
    """Commit metadata as confluent-kafka puts it on the wire: with the C string's NUL
    (it sends strlen + 1 bytes). Other clients read that back; confluent itself reads it
    as a C string, without the NUL."""
    return metadata + "\x00"


def as_meant(metadata):
    """Committed metadata without the NUL that confluent-kafka adds (sent_by_confluent)."""
    return (metadata or "").removesuffix("\x00")


def commit_free(bootstrap, group, offsets, metadata=None):
    """Commit {(topic, partition): offset} for `group` from a consumer that never joins it
    (generation -1, no member id: the group only stores offsets)."""
    c = Consumer(group_conf(bootstrap, group))
    try:
        c.commit(offsets=confluent_offsets(offsets, metadata), asynchronous=False)
    finally:
        c.close()


def kp_group_offsets(result):
    """kafka-python list_group_offsets() -> {group: {partition: (offset, metadata)}} (one
    topic per group here)."""
    return {g: {tp.partition: (o.offset, o.metadata) for tp, o in offsets.items()}
            for g, offsets in result.items()}


def describe(bootstrap, group):
    """confluent describe_consumer_groups (DescribeGroups) of one group."""
    return admin_op(bootstrap, "describe_consumer_groups", [group])[group]


def listed_groups(bootstrap):
    """{group id: ConsumerGroupListing} from confluent list_consumer_groups (ListGroups)."""
    client = admin(bootstrap)  # referenced until the result arrives (see result_of)
    result = client.list_consumer_groups().result(timeout=TIMEOUT_S)
    assert not result.errors, result.errors
    return {g.group_id: g for g in result.valid}


# --- group members on threads of their own --------------------------------------------------

class GroupMember:
    """One consumer in a group, polled by a thread of its own; subclasses wrap a client.

    - assignment: frozenset of (topic, partition) from the last rebalance callback, None
      before the first one; an (eager) revocation empties it;
    - assigns / revokes: how many assignments and revocations the member has seen;
    - records: every record it polled (helpers.Rec);
    - call(fn): fn(client) on the polling thread (the clients are not thread-safe); its
      result, or its exception raised here.
    Closing stops the thread, which closes the client (a dynamic member leaves the group).
    """

    def __init__(self, name, group, topics):
        self.name = name
        self.group = group
        self.topics = list(topics)
        self.assignment = None
        self.assigns = 0
        self.revokes = 0
        self.records = []
        self.errors = []
        self._calls = queue.Queue()
        self._stop = threading.Event()
        self._failure = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def __repr__(self):
        failed = f", failed: {self._failure!r}" if self._failure else ""
        return f"<{self.name}: {self.owned()}, {len(self.records)} records{failed}>"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        self.close(check=exc_type is None)

    # Rebalance listeners call these, on the member's thread.
    def _assigned(self, partitions):
        self.assignment = frozenset((p.topic, p.partition) for p in partitions)
        self.assigns += 1

    def _revoked(self, _partitions=()):
        self.assignment = frozenset()
        self.revokes += 1

    def _main(self):
        try:
            self._run()
        except BaseException as e:  # reported by close()
            self._failure = e

    def _run(self):
        client = self._open()
        try:
            while not self._stop.is_set():
                for fn, done in self._pending_calls():
                    try:
                        done.set_result(fn(client))
                    except Exception as e:
                        done.set_exception(e)
                self.records.extend(self._poll(client))
        finally:
            self._close(client)

    def _pending_calls(self):
        while True:
            try:
                yield self._calls.get_nowait()
            except queue.Empty:
                return

    def call(self, fn, timeout=TIMEOUT_S):
        done = concurrent.futures.Future()
        self._calls.put((fn, done))
        return done.result(timeout)

    def owned(self):
        """The partitions (of any topic) assigned now, sorted."""
        return sorted(p for _, p in self.assignment or ())

    def commit(self, offsets, metadata=None):
        """Commit {(topic, partition): offset} synchronously, as this member."""
        return self.call(lambda client: self._commit(client, offsets, metadata))

    def commit_consumed(self, metadata=None):
        offsets = next_offsets(self.records)
        self.commit(offsets, metadata)
        return offsets

    def close(self, check=True):
        self._stop.set()
        self._thread.join(TIMEOUT_S)
        if check:
            assert not self._thread.is_alive(), f"{self.name} did not close in {TIMEOUT_S} s"
            if self._failure is not None:
                raise AssertionError(f"{self.name} failed: {self._failure!r}") from self._failure


class ConfluentMember(GroupMember):
    def __init__(self, bootstrap, group, topics, name, **conf):
        self.conf = group_conf(bootstrap, group, **{"client.id": name, **conf})
        super().__init__(name, group, topics)

    def _open(self):
        c = Consumer(self.conf)
        c.subscribe(self.topics, on_assign=lambda _, ps: self._assigned(ps),
                    on_revoke=lambda _, ps: self._revoked(ps))
        return c

    def _poll(self, c):
        m = c.poll(0.1)
        if m is None:
            return []
        if m.error():
            self.errors.append(m.error())
            return []
        return [rec_from_confluent(m)]

    def _commit(self, c, offsets, metadata):
        return c.commit(offsets=confluent_offsets(offsets, metadata), asynchronous=False)

    def _close(self, c):
        c.close()


def rebalance_listener(base, member):
    """A kafka-python or aiokafka ConsumerRebalanceListener (`base`) feeding `member`."""
    class Listener(base):
        def on_partitions_revoked(self, revoked):
            member._revoked(revoked)

        def on_partitions_assigned(self, assigned):
            member._assigned(assigned)
    return Listener()


def kafka_python_offsets(offsets, metadata):
    return {kafka.TopicPartition(t, p): OffsetAndMetadata(o, metadata or "", -1)
            for (t, p), o in offsets.items()}


class KafkaPythonMember(GroupMember):
    """kafka-python's KafkaConsumer (AioMember's base too: aiokafka takes the same
    settings)."""

    def __init__(self, bootstrap, group, topics, name, **conf):
        self.conf = kafka_python_group_conf(bootstrap, group, client_id=name, **conf)
        super().__init__(name, group, topics)

    def _open(self):
        c = kafka.KafkaConsumer(**self.conf)
        c.subscribe(self.topics, listener=rebalance_listener(kafka.ConsumerRebalanceListener,
                                                              self))
        return c

    def _poll(self, c):
        records = [rec_from_kafka_python(r) for rs in c.poll(timeout_ms=100).values()
                   for r in rs]
        resume_abandoned_join(c, self.name)
        return records

    def _commit(self, c, offsets, metadata):
        c.commit(kafka_python_offsets(offsets, metadata))

    def _close(self, c):
        c.close()


class AioMember(KafkaPythonMember):
    """aiokafka's AIOKafkaConsumer on an event loop of the member's thread; call() takes
    functions that return awaitables."""

    def _run(self):
        asyncio.run(self._arun())

    async def _arun(self):
        c = aiokafka.AIOKafkaConsumer(**self.conf)
        c.subscribe(self.topics, listener=rebalance_listener(aiokafka.ConsumerRebalanceListener,
                                                              self))
        await c.start()
        try:
            while not self._stop.is_set():
                for fn, done in self._pending_calls():
                    try:
                        done.set_result(await fn(c))
                    except Exception as e:
                        done.set_exception(e)
                batches = await c.getmany(timeout_ms=100)
                self.records.extend(rec_from_kafka_python(r) for rs in batches.values()
                                    for r in rs)
        finally:
            await c.stop()

    def _commit(self, c, offsets, metadata):
        return c.commit({aiokafka.TopicPartition(t, p): (o, metadata or "")
                         for (t, p), o in offsets.items()})


def wait_split(members, partitions, timeout=TIMEOUT_S):
    """Wait until every member has an assignment and together they own each partition in
    `partitions` exactly once; return each member's sorted partitions."""
    def split():
        if any(m.assignment is None for m in members):
            return None
        owned = [m.owned() for m in members]
        return owned if sorted(p for ps in owned for p in ps) == sorted(partitions) else None
    return wait_until(split, f"{members} to split partitions {sorted(partitions)}", timeout)


def wait_records(members, count, timeout=TIMEOUT_S):
    """Wait until the members polled `count` records in all, then for SETTLE_S more;
    return them all (failing if more than `count` arrived)."""
    wait_until(lambda: sum(len(m.records) for m in members) >= count,
               f"{members} to read {count} records", timeout)
    time.sleep(SETTLE_S)
    records = [r for m in members for r in m.records]
    assert len(records) == count, f"{len(records)} records, expected {count}: " \
        f"{positions(records)}"
    return records


def assert_read_by_owner(member, topic):
    """Every record `member` polled is from a partition it owns now."""
    stray = [r for r in member.records if (topic, r.partition) not in member.assignment]
    assert not stray, f"{member.name} read partitions it does not own: {stray[:3]}"


# --- membership and assignment --------------------------------------------------------------

def test_second_member_takes_half_and_nothing_is_read_twice(broker, topic_name, group_name):
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=4)
    group = group_name()
    first = fill(b, topic, 4, 10, "first")
    with ConfluentMember(b, group, [topic], "half-a") as a:
        assert wait_split([a], range(4)) == [[0, 1, 2, 3]]
        assert positions(wait_records([a], 40)) == sorted(first)
        a.commit_consumed()

        with ConfluentMember(b, group, [topic], "half-b") as m2:
            owned = wait_split([a, m2], range(4))
            assert [len(o) for o in owned] == [2, 2], owned
            second = fill(b, topic, 4, 10, "second")
            records = wait_records([a, m2], 80)
            # The first 40 once (by a, before the rebalance), the next 40 once, each by
            # the member owning its partition: nobody re-read what a had committed.
            assert positions(records) == sorted({**first, **second})
            assert_read_by_owner(m2, topic)
            assert sorted((r.partition, r.offset) for r in a.records[40:]) == \
                sorted(k for k in second if k[0] in a.owned())


def test_more_members_than_partitions_leaves_one_idle(broker, topic_name, group_name):
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    group = group_name()
    members = [ConfluentMember(b, group, [topic], f"idle-{i}") for i in range(3)]
    try:
        owned = wait_split(members, [0, 1])
        assert sorted(owned) == [[], [0], [1]], owned
        # A steady state: no member still on its way in.
        time.sleep(2 * HEARTBEAT_MS / 1000)
        assert [m.owned() for m in members] == owned
        sent = fill(b, topic, 2, 15)
        records = wait_records(members, 30)
        assert positions(records) == sorted(sent)
        for m in members:
            assert_read_by_owner(m, topic)
        [idle] = [m for m in members if not m.owned()]
        assert idle.records == []
    finally:
        for m in members:
            m.close()


def test_two_groups_each_read_everything_with_independent_offsets(
        broker, topic_name, group_name):
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    sent = fill(b, topic, 2, 10)
    ga, gb = group_name(), group_name()
    with group_consumer(b, ga, [topic]) as c:
        assert positions(poll_records(c, 20, settle=SETTLE_S)) == sorted(sent)
        c.commit(asynchronous=False)
    assert committed(b, ga, topic, [0, 1]) == {0: (10, ""), 1: (10, "")}
    assert committed(b, gb, topic, [0, 1]) == {0: (NO_OFFSET, ""), 1: (NO_OFFSET, "")}

    # Group b reads everything too, from the start, and commits less.
    with group_consumer(b, gb, [topic]) as c:
        assert positions(poll_records(c, 20, settle=SETTLE_S)) == sorted(sent)
        c.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    assert committed(b, gb, topic, [0, 1]) == {0: (4, ""), 1: (NO_OFFSET, "")}
    assert committed(b, ga, topic, [0, 1]) == {0: (10, ""), 1: (10, "")}


def test_many_groups_on_both_shards(broker, topic_name, group_name):
    """Twelve groups, so that each shard coordinates some whatever the placement: six
    with a live member reading every record, six that only store offsets. Each commits
    offsets of its own; kafka-python's admin then finds all their coordinators in one
    FindCoordinator (v4), reads all their offsets in one OffsetFetch (v8) and deletes
    them in one DeleteGroups."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    sent = fill(b, topic, 2, 10)
    groups = [group_name() for _ in range(12)]
    offsets = {g: {(topic, 0): i + 1, (topic, 1): 20 - i} for i, g in enumerate(groups)}
    metadata = {g: f"group {i}" for i, g in enumerate(groups)}
    members = [ConfluentMember(b, g, [topic], f"many-{i}") for i, g in enumerate(groups[:6])]
    try:
        for m in members:
            assert wait_split([m], [0, 1]) == [[0, 1]]
            assert positions(wait_records([m], 20)) == sorted(sent)
            m.commit(offsets[m.group], metadata[m.group])
        for g in groups[6:]:
            commit_free(b, g, offsets[g], metadata[g])
        listed = listed_groups(b)
        assert [listed[g].state for g in groups] == \
            [ConsumerGroupState.STABLE] * 6 + [ConsumerGroupState.EMPTY] * 6
    finally:
        for m in members:
            m.close()

    ka = kp_admin(b)
    try:
        assert kp_group_offsets(ka.list_group_offsets(groups)) == {
            g: {p: (o, sent_by_confluent(metadata[g])) for (_, p), o in offsets[g].items()}
            for g in groups}
        assert ka.delete_groups(groups) == {g: "OK" for g in groups}
    finally:
        ka.close()
    assert not set(groups) & set(listed_groups(b))
    assert committed(b, groups[0], topic, [0, 1]) == {0: (NO_OFFSET, ""), 1: (NO_OFFSET, "")}


def test_leaving_member_hands_over_at_once(broker, topic_name, group_name):
    """close() sends LeaveGroup: the survivor gets everything long before the (here
    30 s) session timeout would have noticed."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=4)
    group = group_name()
    slow_expiry = {"session.timeout.ms": 30000, "max.poll.interval.ms": 30000}
    with ConfluentMember(b, group, [topic], "stays", **slow_expiry) as stays:
        leaves = ConfluentMember(b, group, [topic], "leaves", **slow_expiry)
        try:
            wait_split([stays, leaves], range(4))
        finally:
            leaves.close()
        wait_split([stays], range(4), timeout=10)
        sent = fill(b, topic, 4, 5)
        assert positions(wait_records([stays], 20)) == sorted(sent)


# A group member in a process of its own (for SIGKILL): argv is its confluent config as
# JSON and the topic; it prints each assignment as a JSON list of partitions.
KILLABLE_MEMBER = """
import json, sys
from confluent_kafka import Consumer
c = Consumer(json.loads(sys.argv[1]))
c.subscribe([sys.argv[2]], on_assign=lambda _, ps: print(
    json.dumps(sorted(p.partition for p in ps)), flush=True))
while True:
    c.poll(0.1)
"""


@contextmanager
def member_process(bootstrap, group, topic, name):
    """KILLABLE_MEMBER running; yields (process, list of the assignments it printed)."""
    conf = group_conf(bootstrap, group, **{"client.id": name})
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_MEMBER, json.dumps(conf), topic],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assignments = []

    def read():
        for line in proc.stdout:
            assignments.append(json.loads(line))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield proc, assignments
    finally:
        proc.kill()
        proc.wait()
        reader.join(5)


def test_killed_member_loses_partitions_after_session_timeout(broker, topic_name, group_name):
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=4)
    group = group_name()
    with member_process(b, group, topic, "doomed") as (proc, assignments):
        wait_until(lambda: assignments == [[0, 1, 2, 3]], "the process to own all partitions")
        with ConfluentMember(b, group, [topic], "survivor") as survivor:
            wait_until(lambda: len(assignments) >= 2 and len(survivor.owned()) == 2
                       and sorted(assignments[-1] + survivor.owned()) == [0, 1, 2, 3],
                       f"a 2/2 split (process: {assignments}, {survivor})")
            proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            wait_split([survivor], range(4), timeout=SESSION_MS / 1000 + 15)
            took = time.monotonic() - killed_at
            # Not before its session expired (its last heartbeat was at most
            # HEARTBEAT_MS before the kill; a closed connection is no LeaveGroup)...
            assert took >= SESSION_MS / 1000 - 1.5, f"handed over after {took:.1f} s"
            # ... nor long after.
            assert took <= SESSION_MS / 1000 + 8, f"handed over after {took:.1f} s"
            sent = fill(b, topic, 4, 5)
            assert positions(wait_records([survivor], 20)) == sorted(sent)


def test_static_member_restart_gets_its_partitions_back_without_rebalance(
        broker, topic_name, group_name):
    """A member with group.instance.id that closes (static members send no LeaveGroup) and
    comes back within the session timeout takes its old partitions back; the other member
    sees no rebalance, then or when the old session would have expired. Removing the
    static member by instance id (admin, batched LeaveGroup) then hands its partitions
    over at once."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=4)
    group = group_name()
    instance = {"group.instance.id": f"{group}-static"}
    with ConfluentMember(b, group, [topic], "dynamic") as other:
        static = ConfluentMember(b, group, [topic], "static", **instance)
        try:
            wait_split([other, static], range(4))
            time.sleep(2 * HEARTBEAT_MS / 1000)  # steady
            before = (other.owned(), other.assigns, other.revokes)
            static_owned = static.owned()
        finally:
            static.close()
        closed_at = time.monotonic()
        with ConfluentMember(b, group, [topic], "static-again", **instance) as again:
            wait_until(lambda: again.assignment is not None, "the static member to rejoin",
                       timeout=SESSION_MS / 1000)
            assert again.owned() == static_owned
            # Past the old session's expiry: still no rebalance anywhere.
            time.sleep(max(0.0, closed_at + SESSION_MS / 1000 + 1.5 - time.monotonic()))
            assert (other.owned(), other.assigns, other.revokes) == before
            assert (again.owned(), again.assigns, again.revokes) == (static_owned, 1, 0)
            sent = fill(b, topic, 4, 5)
            records = wait_records([other, again], 20)
            assert positions(records) == sorted(sent)
            assert_read_by_owner(other, topic)
            assert_read_by_owner(again, topic)
        ka = kp_admin(b)
        try:
            removed = ka.remove_group_members(group, [MemberToRemove(
                group_instance_id=instance["group.instance.id"])])
        finally:
            ka.close()
        assert list(removed.values()) == [kafka.errors.NoError]
        removed_at = time.monotonic()
        wait_split([other], range(4), timeout=SESSION_MS / 1000)
        assert time.monotonic() - removed_at < SESSION_MS / 1000 - 2


def test_added_partitions_get_consumed(broker, topic_name, group_name):
    """Both clients notice the new partitions on a metadata refresh, rejoin and read them."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    with ConfluentMember(b, group_name(), [topic], "grow-confluent",
                         **{"topic.metadata.refresh.interval.ms": 500}) as c, \
            KafkaPythonMember(b, group_name(), [topic], "grow-kafka-python",
                              metadata_max_age_ms=500) as k:
        for m in (c, k):
            assert wait_split([m], [0, 1]) == [[0, 1]]
        admin_op(b, "create_partitions", [NewPartitions(topic, 4)])
        for m in (c, k):
            wait_split([m], range(4))
        sent = fill(b, topic, 4, 5)
        for m in (c, k):
            assert positions(wait_records([m], 20)) == sorted(sent)


def test_kafka_python_aiokafka_and_confluent_share_a_group(broker, topic_name, group_name):
    """Three clients in one group. aiokafka offers only roundrobin, so the coordinator
    must pick the one protocol all members support; each member then reads and commits
    its own partition."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=3)
    group = group_name()
    members = [ConfluentMember(b, group, [topic], "mixed-confluent"),
               KafkaPythonMember(b, group, [topic], "mixed-kafka-python"),
               AioMember(b, group, [topic], "mixed-aiokafka")]
    try:
        # Wait for the split itself: a split seen before the last member's join has
        # been through a rebalance can still give one member everything (a CI run saw
        # [[], [], [0, 1, 2]] from an earlier generation).
        wait_until(lambda: sorted(wait_split(members, range(3))) == [[0], [1], [2]],
                   "one partition each")
        desc = describe(b, group)
        assert desc.partition_assignor == "roundrobin"
        assert sorted(m.client_id for m in desc.members) == sorted(m.name for m in members)
        sent = fill(b, topic, 3, 10)
        assert positions(wait_records(members, 30)) == sorted(sent)
        for m in members:
            assert_read_by_owner(m, topic)
            m.commit_consumed(metadata=m.name)
        by_partition = {m.owned()[0]: m.name for m in members}
        assert committed(b, group, topic, range(3)) == {
            p: (10, name) for p, name in by_partition.items()}
    finally:
        for m in members:
            m.close()


def test_kcat_balanced_consumer(broker, topic_name, group_name, kcat_bin):
    """kcat -G: a balanced consumer that commits what it read when it exits (-c N)."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    group = group_name()
    sent = fill(b, topic, 2, 10)
    args = ["-G", group, "-q", "-f", "%p %o %s\n", "-X", "auto.offset.reset=earliest",
            "-X", f"session.timeout.ms={SESSION_MS}", "-X", f"heartbeat.interval.ms={HEARTBEAT_MS}"]

    def read(count):
        out = kcat(kcat_bin, b, *args, "-c", str(count), topic)
        return sorted((int(p), int(o), v.encode()) for p, o, v in
                      (line.split(" ", 2) for line in out.splitlines()))

    assert read(20) == sorted((p, o, v) for (p, o), v in sent.items())
    assert committed(b, group, topic, [0, 1]) == {0: (10, ""), 1: (10, "")}
    more = fill(b, topic, 2, 3, "more")
    assert read(6) == sorted((p, o, v) for (p, o), v in more.items())
    assert committed(b, group, topic, [0, 1]) == {0: (13, ""), 1: (13, "")}


# --- committed offsets ----------------------------------------------------------------------

def test_next_member_resumes_at_the_committed_offset(broker, topic_name, group_name):
    """At least once: what was read but not committed is read again, from exactly the
    committed offset; a partition with no commit starts at auto.offset.reset."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    group = group_name()
    sent = fill(b, topic, 2, 20)
    with group_consumer(b, group, [topic]) as c:
        assert positions(poll_records(c, 40)) == sorted(sent)
        c.commit(offsets=[TopicPartition(topic, 0, 8)], asynchronous=False)
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in got] == [(0, 8), (1, OFFSET_INVALID)]

    with group_consumer(b, group, [topic]) as c:
        again = poll_records(c, 12 + 20, settle=SETTLE_S)
        assert positions(again) == sorted([(0, o) for o in range(8, 20)]
                                          + [(1, o) for o in range(20)])
        c.commit(asynchronous=False)  # everything read
    assert committed(b, group, topic, [0, 1]) == {0: (20, ""), 1: (20, "")}

    more = fill(b, topic, 2, 2, "more")
    with group_consumer(b, group, [topic]) as c:
        assert positions(poll_records(c, 4, settle=SETTLE_S)) == sorted(more)


def test_commit_metadata_round_trips(broker, topic_name, group_name):
    """Metadata committed with an offset comes back with it, byte for byte, whichever
    client commits and whichever reads (confluent-kafka only reads its own: it reads
    metadata as a C string)."""
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    group = group_name()
    c = Consumer(group_conf(b, group))
    k = kafka.KafkaConsumer(**kafka_python_group_conf(b, group))
    tp0, tp1 = kafka.TopicPartition(topic, 0), kafka.TopicPartition(topic, 1)
    try:
        c.commit(offsets=confluent_offsets({(topic, 0): 5}, "from confluent: é ✓"),
                 asynchronous=False)
        [got] = c.committed([TopicPartition(topic, 0)], timeout=10)
        assert (got.offset, got.metadata) == (5, "from confluent: é ✓")
        assert k.committed(tp0, metadata=True)[:2] == \
            (5, sent_by_confluent("from confluent: é ✓"))

        k.commit({tp1: OffsetAndMetadata(7, "from kafka-python", -1)})
        assert k.committed(tp1, metadata=True)[:2] == (7, "from kafka-python")

        # A later commit replaces offset and metadata.
        k.commit({tp0: OffsetAndMetadata(6, "", -1)})
        assert k.committed(tp0, metadata=True)[:2] == (6, "")
    finally:
        c.close()
        k.close()
    assert committed(b, group, topic, [0, 1]) == {0: (6, ""), 1: (7, "from kafka-python")}


def test_auto_commit(broker, topic_name, group_name):
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=3)
    group = group_name()
    sent = fill(b, topic, 3, 10)
    auto = {"enable.auto.commit": True, "auto.commit.interval.ms": 200}
    with group_consumer(b, group, [topic], **auto) as c:
        assert positions(poll_records(c, 30)) == sorted(sent)
        # The timer commits what was read, with the consumer still open.
        wait_until(lambda: committed(b, group, topic, range(3)) ==
                   {p: (10, "") for p in range(3)}, "the auto commit", timeout=10)
    more = fill(b, topic, 3, 2, "more")
    with group_consumer(b, group, [topic], **auto) as c:
        assert positions(poll_records(c, 6, settle=SETTLE_S)) == sorted(more)


def test_committed_offsets_survive_restart(broker_factory, topic_name, group_name):
    b = broker_factory()
    topic = create_topic(b.bootstrap, topic_name(), partitions=2)
    fill(b.bootstrap, topic, 2, 10)
    live, free, dropped = group_name(), group_name(), group_name()
    with ConfluentMember(b.bootstrap, live, [topic], "restart-live") as m:
        wait_records([m], 20)
        m.commit({(topic, 0): 7, (topic, 1): 3}, metadata="before restart")
    commit_free(b.bootstrap, free, {(topic, 0): 2}, metadata="free")
    commit_free(b.bootstrap, dropped, {(topic, 1): 9})
    admin_op(b.bootstrap, "delete_consumer_groups", [dropped])

    def state():
        return {g: committed(b.bootstrap, g, topic, [0, 1]) for g in (live, free, dropped)}
    before = state()
    assert before == {live: {0: (7, "before restart"), 1: (3, "before restart")},
                      free: {0: (2, "free"), 1: (NO_OFFSET, "")},
                      dropped: {0: (NO_OFFSET, ""), 1: (NO_OFFSET, "")}}
    b.restart()
    assert state() == before
    assert {live, free} <= set(listed_groups(b.bootstrap))

    # The group resumes where it committed; newer commits win after the next restart.
    with group_consumer(b.bootstrap, live, [topic]) as c:
        resumed = poll_records(c, 3 + 7, settle=SETTLE_S)
        assert positions(resumed) == [(0, o) for o in range(7, 10)] + \
            [(1, o) for o in range(3, 10)]
        c.commit(asynchronous=False)
    ka = kp_admin(b.bootstrap)
    try:
        assert ka.delete_group_offsets(free, [kafka.TopicPartition(topic, 0)]) == \
            {kafka.TopicPartition(topic, 0): kafka.errors.NoError}
    finally:
        ka.close()
    b.restart()
    assert state() == {live: {0: (10, ""), 1: (10, "")},
                       free: {0: (NO_OFFSET, ""), 1: (NO_OFFSET, "")},
                       dropped: {0: (NO_OFFSET, ""), 1: (NO_OFFSET, "")}}


def test_offsets_expire_after_retention_unless_the_group_is_active(
        broker_factory, topic_name, group_name):
    """offsets_retention_ms: a group that only stores offsets loses them that long after
    its commit; a group with a member subscribed to the topic keeps them until it has been
    empty that long."""
    retention_s = 2
    b = broker_factory(config={"offsets_retention_ms": retention_s * 1000,
                               "offsets_retention_check_interval_ms": 200})
    topic = create_topic(b.bootstrap, topic_name(), partitions=1)
    fill(b.bootstrap, topic, 1, 5)
    free, live = group_name(), group_name()
    commit_free(b.bootstrap, free, {(topic, 0): 4})
    with ConfluentMember(b.bootstrap, live, [topic], "retained") as m:
        wait_records([m], 5)
        m.commit_consumed()
        committed_at = time.monotonic()
        wait_until(lambda: committed(b.bootstrap, free, topic, [0]) == {0: (NO_OFFSET, "")},
                   "the free group's offsets to expire", timeout=retention_s + 10)
        # Well past the retention since its own commit: a member still reads the topic.
        time.sleep(max(0.0, committed_at + retention_s + 1.5 - time.monotonic()))
        assert committed(b.bootstrap, live, topic, [0]) == {0: (5, "")}
    emptied_at = time.monotonic()
    wait_until(lambda: committed(b.bootstrap, live, topic, [0]) == {0: (NO_OFFSET, "")},
               "the emptied group's offsets to expire", timeout=retention_s + 10)
    assert time.monotonic() - emptied_at >= retention_s - 1


# --- admin ----------------------------------------------------------------------------------

def test_admin_list_describe_offsets_and_delete(broker, topic_name, group_name):
    b = broker.bootstrap
    topic = create_topic(b, topic_name(), partitions=2)
    group = group_name()
    fill(b, topic, 2, 10)
    ka = kp_admin(b)
    try:
        with ConfluentMember(b, group, [topic], "admin-member") as m:
            wait_records([m], 20)
            m.commit({(topic, 0): 10, (topic, 1): 6}, metadata="admin")

            # confluent-kafka: ListGroups, DescribeGroups.
            assert listed_groups(b)[group].state == ConsumerGroupState.STABLE
            desc = describe(b, group)
            assert (desc.state, desc.partition_assignor, desc.is_simple_consumer_group) == \
                (ConsumerGroupState.STABLE, "range", False)
            assert desc.coordinator.id == 1
            [member] = desc.members
            assert member.client_id == "admin-member"
            assert sorted((tp.topic, tp.partition)
                          for tp in member.assignment.topic_partitions) == \
                [(topic, 0), (topic, 1)]
            # kafka-python: the same from its own requests.
            assert {"group_id": group, "protocol_type": "consumer"}.items() <= \
                next(g for g in ka.list_groups() if g["group_id"] == group).items()
            kdesc = ka.describe_groups([group])[group]
            assert (kdesc["error"], kdesc["group_state"], kdesc["protocol_type"],
                    kdesc["protocol_data"]) == (None, "Stable", "consumer", "range")
            [kmember] = kdesc["members"]
            assert kmember["member_id"] == member.member_id
            assert kmember["client_id"] == "admin-member"
            assert kmember["member_metadata"]["topics"] == [topic]

            # A group with members is not deleted, nor are offsets of a topic it reads.
            a = admin(b)
            [future] = a.delete_consumer_groups([group]).values()
            err = future.exception(timeout=TIMEOUT_S)
            assert err is not None and err.args[0].code() == KafkaError.NON_EMPTY_GROUP, err
            assert ka.delete_group_offsets(group, [kafka.TopicPartition(topic, 0)]) == \
                {kafka.TopicPartition(topic, 0): kafka.errors.GroupSubscribedToTopicError}

        desc = describe(b, group)
        assert (desc.state, desc.members) == (ConsumerGroupState.EMPTY, [])
        assert listed_groups(b)[group].state == ConsumerGroupState.EMPTY
        assert committed(b, group, topic, [0, 1]) == {0: (10, "admin"), 1: (6, "admin")}
        assert confluent_committed(b, group, topic, [0, 1]) == \
            {0: (10, "admin"), 1: (6, "admin")}
        assert kp_group_offsets(ka.list_group_offsets(group)) == \
            {group: {0: (10, sent_by_confluent("admin")), 1: (6, sent_by_confluent("admin"))}}

        # OffsetDelete once nobody reads the topic.
        assert ka.delete_group_offsets(group, [kafka.TopicPartition(topic, 0)]) == \
            {kafka.TopicPartition(topic, 0): kafka.errors.NoError}
        assert confluent_committed(b, group, topic, [0, 1]) == \
            {0: (OFFSET_INVALID, ""), 1: (6, "admin")}
        # An admin commit (AlterConsumerGroupOffsets) on the empty group.
        admin_op(b, "alter_consumer_group_offsets", [ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, 0, 3, "altered")])])
        assert committed(b, group, topic, [0, 1]) == {0: (3, "altered"), 1: (6, "admin")}

        assert admin_op(b, "delete_consumer_groups", [group]) == {group: None}
        assert group not in listed_groups(b)
        assert group not in {g["group_id"] for g in ka.list_groups()}
        assert committed(b, group, topic, [0, 1]) == {0: (NO_OFFSET, ""), 1: (NO_OFFSET, "")}
    finally:
        ka.close()


# --- the protocol by hand: generations and fencing ------------------------------------------

class RawMember:
    """A group member speaking the classic protocol itself (kwire), on its own
    connection, with the "range" protocol of a consumer subscribed to `topics`."""

    def __init__(self, bootstrap, group, topics, name):
        self.conn = kwire.Connection.to(bootstrap, client_id=name)
        self.group = group
        self.protocols = [("range", kwire.consumer_subscription(topics))]
        self.member_id = ""
        self.generation = -1
        self._pending = None

    def close(self):
        self.conn.close()

    def send_join(self):
        """JoinGroup, without waiting for the answer (finish_join()). A new member first
        gets MEMBER_ID_REQUIRED with its member id (JoinGroup v4+), then asks again."""
        kw = {"session_timeout_ms": SESSION_MS, "rebalance_timeout_ms": REBALANCE_MS}
        if not self.member_id:
            first = self.conn.join_group(self.group, "", self.protocols, **kw)
            assert first.error_code == kwire.MEMBER_ID_REQUIRED and first.member_id, first
            self.member_id = first.member_id
        self._pending = self.conn.send_join_group(self.group, self.member_id, self.protocols,
                                                  **kw)

    def finish_join(self):
        result = self.conn.finish_join_group(self._pending)
        assert result.error_code == kwire.NONE, result
        assert result.member_id == self.member_id, result
        self.generation = result.generation
        return result

    def join(self):
        self.send_join()
        return self.finish_join()

    def sync(self, assignments=None):
        """SyncGroup (the leader passes {member id: assignment}); the member's assignment."""
        error_code, assignment = self.conn.sync_group(self.group, self.generation,
                                                      self.member_id, assignments or {})
        assert error_code == kwire.NONE, error_code
        return assignment

    def heartbeat(self, generation=None):
        return self.conn.heartbeat(self.group, self.generation if generation is None
                                   else generation, self.member_id)

    def commit(self, offsets, generation=None, member_id=None):
        """OffsetCommit {(topic, partition): offset}: {(topic, partition): error code}."""
        return self.conn.offset_commit(
            self.group, self.generation if generation is None else generation,
            self.member_id if member_id is None else member_id,
            {tp: (o, None) for tp, o in offsets.items()})


def heartbeat_until_rebalance(member):
    """Heartbeat until the coordinator answers REBALANCE_IN_PROGRESS (another member's
    JoinGroup reaches it on another connection); every earlier answer must be NONE."""
    codes = []

    def rebalancing():
        codes.append(member.heartbeat())
        return codes[-1] == kwire.REBALANCE_IN_PROGRESS
    wait_until(rebalancing, "a heartbeat answered REBALANCE_IN_PROGRESS", timeout=10)
    assert set(codes[:-1]) <= {kwire.NONE}, codes


@contextmanager
def raw_group_of_two(bootstrap, group, topic):
    """a forms the group alone (generation g1), b joins, a hears of the rebalance by
    heartbeat and rejoins. Yields (a, b, g1, a's and b's JoinGroup results, b's
    assignment); the leader a assigned partition 0 to itself and 1 to b."""
    a = RawMember(bootstrap, group, [topic], "raw-a")
    b = RawMember(bootstrap, group, [topic], "raw-b")
    try:
        alone = a.join()
        assert (alone.leader, [m.member_id for m in alone.members]) == \
            (a.member_id, [a.member_id])
        a.sync({a.member_id: kwire.consumer_assignment({topic: [0, 1]})})
        g1 = a.generation
        assert a.heartbeat() == kwire.NONE

        b.send_join()
        heartbeat_until_rebalance(a)
        a.send_join()
        joined_a, joined_b = a.finish_join(), b.finish_join()
        assignments = {a.member_id: kwire.consumer_assignment({topic: [0]}),
                       b.member_id: kwire.consumer_assignment({topic: [1]})}
        assert a.sync(assignments) == assignments[a.member_id]
        b_assignment = b.sync()
        yield a, b, g1, joined_a, joined_b, b_assignment
    finally:
        a.close()
        b.close()


def test_heartbeat_during_rebalance_gets_rebalance_in_progress(broker, topic_name, group_name):
    bootstrap = broker.bootstrap
    topic = create_topic(bootstrap, topic_name(), partitions=2)
    group = group_name()
    with kwire.Connection.to(bootstrap) as conn:
        coordinator = conn.find_coordinator(group)
    assert coordinator == kwire.Coordinator(kwire.NONE, 1, broker.host, broker.port)

    with raw_group_of_two(bootstrap, group, topic) as (a, b, g1, joined_a, joined_b, got_b):
        # The new generation: a stays leader and alone learns every member's metadata.
        assert joined_a.generation == joined_b.generation == g1 + 1
        assert (joined_a.protocol, joined_a.leader, joined_b.leader) == \
            ("range", a.member_id, a.member_id)
        assert sorted((m.member_id, m.metadata) for m in joined_a.members) == \
            sorted((m.member_id, m.protocols[0][1]) for m in (a, b))
        assert joined_b.members == []
        assert got_b == kwire.consumer_assignment({topic: [1]})
        assert (a.heartbeat(), b.heartbeat()) == (kwire.NONE, kwire.NONE)

        desc = describe(bootstrap, group)
        assert (desc.state, desc.partition_assignor) == (ConsumerGroupState.STABLE, "range")
        assert sorted((m.member_id, m.client_id, [tp.partition for tp in
                                                  m.assignment.topic_partitions])
                      for m in desc.members) == \
            sorted([(a.member_id, "raw-a", [0]), (b.member_id, "raw-b", [1])])

        # b leaves (LeaveGroup v3): a's next heartbeat hears of it, and a rejoins alone.
        assert b.conn.leave_group(group, [(b.member_id, None)]) == \
            (kwire.NONE, [(b.member_id, None, kwire.NONE)])
        heartbeat_until_rebalance(a)
        alone = a.join()
        assert (alone.generation, [m.member_id for m in alone.members]) == \
            (g1 + 2, [a.member_id])


def test_offset_commit_fencing(broker, topic_name, group_name):
    """OffsetCommit from an old generation gets ILLEGAL_GENERATION and from an unknown
    member UNKNOWN_MEMBER_ID, and neither writes anything; a "free" commit (generation
    -1, no member id) is refused while the group has members and accepted once it is
    empty."""
    bootstrap = broker.bootstrap
    topic = create_topic(bootstrap, topic_name(), partitions=2)
    group = group_name()
    tp0 = (topic, 0)
    with raw_group_of_two(bootstrap, group, topic) as (a, b, g1, *_):
        assert a.commit({tp0: 11}, generation=g1) == {tp0: kwire.ILLEGAL_GENERATION}
        assert a.commit({tp0: 12}) == {tp0: kwire.NONE}
        assert a.commit({tp0: 13}, member_id="no-such-member") == \
            {tp0: kwire.UNKNOWN_MEMBER_ID}
        assert a.commit({tp0: 14}, generation=-1, member_id="") == \
            {tp0: kwire.UNKNOWN_MEMBER_ID}
        assert b.commit({(topic, 1): 21}) == {(topic, 1): kwire.NONE}
        assert a.heartbeat(generation=g1) == kwire.ILLEGAL_GENERATION
        assert a.conn.heartbeat(group, a.generation, "no-such-member") == \
            kwire.UNKNOWN_MEMBER_ID
        assert a.conn.offset_fetch(group, [tp0, (topic, 1)]) == (kwire.NONE, {
            tp0: kwire.CommittedOffset(12, -1, "", kwire.NONE),
            (topic, 1): kwire.CommittedOffset(21, -1, "", kwire.NONE)})

        # Both leave in one batched LeaveGroup; an unknown member is refused alone.
        assert a.conn.leave_group(group, [(a.member_id, None), (b.member_id, None)]) == \
            (kwire.NONE, [(a.member_id, None, kwire.NONE), (b.member_id, None, kwire.NONE)])
        assert a.conn.leave_group(group, [("no-such-member", None)]) == \
            (kwire.NONE, [("no-such-member", None, kwire.UNKNOWN_MEMBER_ID)])
        # Empty now: a free commit is accepted.
        assert a.commit({tp0: 15}, generation=-1, member_id="") == {tp0: kwire.NONE}
        assert a.conn.offset_fetch(group)[1][tp0].offset == 15


def test_join_refuses_session_timeouts_outside_the_broker_bounds(broker, topic_name, group_name):
    """group_min_session_timeout_ms (6000) and group_max_session_timeout_ms (300000):
    INVALID_SESSION_TIMEOUT outside them."""
    group = group_name()
    protocols = [("range", kwire.consumer_subscription([topic_name()]))]
    with kwire.Connection.to(broker.bootstrap) as conn:
        for timeout in (5999, 300001):
            assert conn.join_group(group, "", protocols, session_timeout_ms=timeout).error_code \
                == kwire.INVALID_SESSION_TIMEOUT, timeout
        assert conn.join_group(group, "", protocols, session_timeout_ms=6000).error_code == \
            kwire.MEMBER_ID_REQUIRED


# --- kwire's group encoders against kafka-python's (no broker) ------------------------------

def kwire_request(api_key, version, body, correlation_id=3):
    return kwire.frame(kwire.request_header(api_key, version, correlation_id, "cid") + body)


def test_group_request_encoders_match_kafka_python():
    from kafka.protocol.consumer.group import (
        HeartbeatRequest,
        JoinGroupRequest,
        LeaveGroupRequest,
        OffsetCommitRequest,
        OffsetFetchRequest,
        SyncGroupRequest,
    )
    from kafka.protocol.metadata import FindCoordinatorRequest

    sub = kwire.consumer_subscription(["t", "u"])
    protocol = JoinGroupRequest.JoinGroupRequestProtocol
    assign = SyncGroupRequest.SyncGroupRequestAssignment
    identity = LeaveGroupRequest.MemberIdentity
    commit_topic = OffsetCommitRequest.OffsetCommitRequestTopic
    commit_part = commit_topic.OffsetCommitRequestPartition
    fetch_topic = OffsetFetchRequest.OffsetFetchRequestTopic
    cases = [
        (FindCoordinatorRequest(key="g", key_type=0),
         kwire.API_FIND_COORDINATOR, kwire.FIND_COORDINATOR_VERSION,
         kwire.find_coordinator_body("g")),
        (JoinGroupRequest(group_id="g", session_timeout_ms=6000, rebalance_timeout_ms=9000,
                          member_id="m", group_instance_id="i", protocol_type="consumer",
                          protocols=[protocol(name="range", metadata=sub),
                                     protocol(name="roundrobin", metadata=sub)]),
         kwire.API_JOIN_GROUP, kwire.JOIN_GROUP_VERSION,
         kwire.join_group_body("g", "m", [("range", sub), ("roundrobin", sub)], 6000, 9000,
                               "i")),
        (SyncGroupRequest(group_id="g", generation_id=4, member_id="m", group_instance_id=None,
                          assignments=[assign(member_id="m", assignment=b"ab"),
                                       assign(member_id="n", assignment=b"")]),
         kwire.API_SYNC_GROUP, kwire.SYNC_GROUP_VERSION,
         kwire.sync_group_body("g", 4, "m", {"m": b"ab", "n": b""})),
        (HeartbeatRequest(group_id="g", generation_id=4, member_id="m", group_instance_id="i"),
         kwire.API_HEARTBEAT, kwire.HEARTBEAT_VERSION, kwire.heartbeat_body("g", 4, "m", "i")),
        (LeaveGroupRequest(group_id="g", members=[identity(member_id="m", group_instance_id=None),
                                                  identity(member_id="", group_instance_id="i")]),
         kwire.API_LEAVE_GROUP, kwire.LEAVE_GROUP_VERSION,
         kwire.leave_group_body("g", [("m", None), ("", "i")])),
        (OffsetCommitRequest(group_id="g", generation_id_or_member_epoch=4, member_id="m",
                             group_instance_id=None, topics=[
                                 commit_topic(name="t", partitions=[
                                     commit_part(partition_index=0, committed_offset=5,
                                                 committed_leader_epoch=-1,
                                                 committed_metadata="md"),
                                     commit_part(partition_index=2, committed_offset=7,
                                                 committed_leader_epoch=-1,
                                                 committed_metadata=None)]),
                                 commit_topic(name="u", partitions=[
                                     commit_part(partition_index=1, committed_offset=9,
                                                 committed_leader_epoch=-1,
                                                 committed_metadata="")])]),
         kwire.API_OFFSET_COMMIT, kwire.OFFSET_COMMIT_VERSION,
         kwire.offset_commit_body("g", 4, "m", {("t", 0): (5, "md"), ("t", 2): (7, None),
                                                ("u", 1): (9, "")})),
        (OffsetFetchRequest(group_id="g", topics=[fetch_topic(name="t", partition_indexes=[0, 2]),
                                                  fetch_topic(name="u", partition_indexes=[1])]),
         kwire.API_OFFSET_FETCH, kwire.OFFSET_FETCH_VERSION,
         kwire.offset_fetch_body("g", [("t", 0), ("t", 2), ("u", 1)])),
        (OffsetFetchRequest(group_id="g", topics=None),
         kwire.API_OFFSET_FETCH, kwire.OFFSET_FETCH_VERSION, kwire.offset_fetch_body("g")),
    ]
    for theirs, api_key, version, body in cases:
        assert kwire_request(api_key, version, body) == \
            kafka_python_bytes(theirs, version, 3), type(theirs).__name__


def test_group_response_decoders_match_kafka_python():
    from kafka.protocol.consumer.group import JoinGroupResponse, OffsetFetchResponse
    from kafka.protocol.consumer.metadata import (
        ConsumerProtocolAssignment,
        ConsumerProtocolSubscription,
    )
    from kafka.protocol.metadata import FindCoordinatorResponse

    member = JoinGroupResponse.JoinGroupResponseMember
    theirs = JoinGroupResponse(throttle_time_ms=0, error_code=0, generation_id=3,
                               protocol_name="range", leader="a", member_id="b", members=[
                                   member(member_id="a", group_instance_id=None, metadata=b"x"),
                                   member(member_id="b", group_instance_id="s", metadata=b"")])
    assert kwire.decode_join_group(bytes(theirs.encode(version=kwire.JOIN_GROUP_VERSION))) == \
        kwire.JoinResult(0, 3, "range", "a", "b", [kwire.JoinedMember("a", None, b"x"),
                                                   kwire.JoinedMember("b", "s", b"")])
    topic = OffsetFetchResponse.OffsetFetchResponseTopic
    part = topic.OffsetFetchResponsePartition
    theirs = OffsetFetchResponse(throttle_time_ms=0, error_code=0, topics=[
        topic(name="t", partitions=[part(partition_index=1, committed_offset=5,
                                         committed_leader_epoch=-1, metadata="m",
                                         error_code=0)])])
    assert kwire.decode_offset_fetch(bytes(theirs.encode(version=kwire.OFFSET_FETCH_VERSION))) \
        == (0, {("t", 1): kwire.CommittedOffset(5, -1, "m", 0)})
    theirs = FindCoordinatorResponse(throttle_time_ms=0, error_code=0, error_message=None,
                                     node_id=1, host="h", port=9)
    assert kwire.decode_find_coordinator(bytes(theirs.encode(
        version=kwire.FIND_COORDINATOR_VERSION))) == kwire.Coordinator(0, 1, "h", 9)

    sub = ConsumerProtocolSubscription.decode(kwire.consumer_subscription(["a", "b"]))
    assert (sub.version, sub.topics, sub.user_data) == (0, ["a", "b"], None)
    assignment = ConsumerProtocolAssignment.decode(
        kwire.consumer_assignment({"t": [0, 2], "u": [1]}))
    assert [(tp.topic, tp.partitions) for tp in assignment.assigned_partitions] == \
        [("t", [0, 2]), ("u", [1])]
