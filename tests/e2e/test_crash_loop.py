"""Crash loop: SIGKILL the broker under acks=all load, restart it, check what survived.

Each cycle:
1. load starts: two idempotent producers and one plain producer (retries off, so each
   record is sent once), all acks=all, writing small records to random partitions of a
   topic on both shards; two members of a consumer group read it and commit after every
   poll;
2. after a random moment the broker is killed with SIGKILL; one cycle in four it is
   killed again 0-50 ms into the restart (mostly before it serves: inside recovery);
3. it is restarted on the same data dir and port while the clients keep going: the
   idempotent producers retry what was in flight, and the broker must recognise batches
   it already holds (producer state rebuilt from the log) instead of writing them twice;
4. the load stops (every delivery resolved) and everything is checked:
   - every acknowledged record is at the partition and offset its acknowledgement gave,
     byte for byte, and no record is in the log twice;
   - records of one producer are in the order it sent them, in each partition;
   - every partition reads whole from its log start (the consumer checks each batch's
     CRC), and fetches from random offsets start at the offset asked (the index works);
   - each partition's committed offset is at least the last commit the broker
     acknowledged, and not past the high watermark.

CRASH_LOOP_CYCLES (default 20) and CRASH_LOOP_SEED replay a run; RELIABILITY.md has a long run.
A summary line per cycle is printed (pytest -s shows it).
"""

import os
import random
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from conftest import BrokerError
from helpers import create_topic

CYCLES = int(os.environ.get("CRASH_LOOP_CYCLES", "20"))
SEED = int(os.environ.get("CRASH_LOOP_SEED", str(random.randrange(1 << 32))))
PARTITIONS = 6
GROUP = "crash-loop"
VALUE_PAD = 80
# Records per second per producer: bounded so that reading everything back each cycle
# stays quick in a long run.
RATE = 600


def value_of(pid, seq):
    return f"{pid}:{seq}:".encode().ljust(VALUE_PAD, b".")


def parse_value(v):
    pid, seq, _ = v.split(b":", 2)
    return pid.decode(), int(seq)


class LoadProducer:
    """One producer thread: sequence-numbered records to random partitions."""

    def __init__(self, bootstrap, topic, pid, idempotent, rng):
        self.pid = pid
        self.topic = topic
        self.idempotent = idempotent
        self.rng = random.Random(rng.random())
        conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 60000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "enable.idempotence": idempotent,
            "log_level": 0,  # connection refused while the broker is down is expected
        }
        if not idempotent:
            conf.update({"retries": 0, "max.in.flight.requests.per.connection": 1})
        self.p = Producer(conf)
        self.acked = {}  # seq -> (partition, offset)
        self.failed = 0
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        seq = parse_value(msg.value())[1]
        if err is None:
            self.acked[seq] = (msg.partition(), msg.offset())
        else:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(str(err))

    def run(self):
        seq = 0
        while not self.stop.is_set():
            try:
                self.p.produce(self.topic, value_of(self.pid, seq),
                               partition=self.rng.randrange(PARTITIONS),
                               on_delivery=self.on_delivery)
                seq += 1
            except BufferError:
                pass
            self.p.poll(0)
            time.sleep(1 / RATE)

    def finish(self):
        self.stop.set()
        self.thread.join()
        left = self.p.flush(90)
        assert left == 0, f"{self.pid}: {left} deliveries unresolved after 90 s"


class LoadConsumer:
    """A group member reading the topic and committing (synchronously) after each poll."""

    def __init__(self, bootstrap, topic, commits, lock):
        self.c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "check.crcs": True,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "log_level": 0,
        })
        self.c.subscribe([topic])
        self.topic = topic
        self.commits = commits
        self.lock = lock
        self.consumed = 0
        self.record_errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            msgs = self.c.consume(200, timeout=0.1)
            ends = {}
            for m in msgs:
                if m.error() is not None:
                    # Broker gone or restarting: transport errors are expected; a
                    # CRC or corrupt-message error is not.
                    text = str(m.error())
                    if "CRC" in text or "orrupt" in text:
                        self.record_errors.append(text)
                    continue
                self.consumed += 1
                ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
            if not ends:
                continue
            # Only partitions still assigned: a member that just lost one could
            # otherwise commit it after its new owner (a client-side race, which would
            # move the committed offset back without any broker fault).
            mine = {tp.partition for tp in self.c.assignment()}
            offsets = [TopicPartition(self.topic, p, o) for p, o in ends.items() if p in mine]
            if not offsets:
                continue
            try:
                done = self.c.commit(offsets=offsets, asynchronous=False)
            except KafkaException:
                continue  # not acknowledged: nothing to hold the broker to
            with self.lock:
                for tp in done or []:
                    if tp.error is None and tp.offset >= 0:
                        self.commits[tp.partition] = max(self.commits.get(tp.partition, 0),
                                                         tp.offset)

    def finish(self):
        self.stop.set()
        self.thread.join()
        self.c.close()


def read_all(bootstrap, topic):
    """partition -> (low, high, [(offset, value)]) read from the log start, CRCs checked."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-loop-check",
                  "enable.auto.commit": False, "check.crcs": True,
                  "fetch.max.bytes": 8 << 20})
    try:
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                 for p in range(PARTITIONS)}
        c.assign([TopicPartition(topic, p, lo) for p, (lo, hi) in marks.items() if hi > lo])
        out = {p: [] for p in range(PARTITIONS)}
        left = sum(hi - lo for lo, hi in marks.values())
        deadline = time.monotonic() + 120
        while left > 0:
            assert time.monotonic() < deadline, f"reading back: {left} records missing"
            for m in c.consume(10000, timeout=0.1):
                assert m.error() is None, f"reading back: {m.error()}"
                p, (lo, hi) = m.partition(), marks[m.partition()]
                if m.offset() < hi:
                    out[p].append((m.offset(), m.value()))
                    left -= 1
        return {p: (*marks[p], out[p]) for p in range(PARTITIONS)}
    finally:
        c.close()


def check_random_offsets(bootstrap, topic, logs, rng, rounds=3):
    """Fetches from random offsets start at the offset asked (offset index lookups)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-loop-index",
                  "enable.auto.commit": False, "check.crcs": True})
    try:
        for _ in range(rounds):
            want = {p: rng.randrange(lo, hi) for p, (lo, hi, _) in logs.items() if hi > lo}
            c.assign([TopicPartition(topic, p, off) for p, off in want.items()])
            got = {}
            deadline = time.monotonic() + 30
            while len(got) < len(want):
                assert time.monotonic() < deadline, f"no records at {want}, got {got}"
                for m in c.consume(100, timeout=0.1):
                    assert m.error() is None, m.error()
                    got.setdefault(m.partition(), (m.offset(), m.value()))
            for p, off in want.items():
                lo, _, records = logs[p]
                assert got[p] == records[off - lo], f"partition {p} offset {off}: {got[p][0]}"
            c.unassign()
    finally:
        c.close()


def committed(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def verify(bootstrap, topic, producers, commits, rng):
    logs = read_all(bootstrap, topic)
    seen = {}
    for p, (lo, hi, records) in logs.items():
        assert [o for o, _ in records] == list(range(lo, hi)), f"partition {p} has gaps"
        last_seq = {}
        for off, v in records:
            key = parse_value(v)
            assert key not in seen, f"{key} twice: at {seen[key]} and {(p, off)}"
            seen[key] = (p, off)
            pid, seq = key
            assert seq > last_seq.get(pid, -1), f"{pid} out of order in partition {p} at {off}"
            last_seq[pid] = seq
    acked = 0
    for prod in producers:
        for seq, where in prod.acked.items():
            assert seen.get((prod.pid, seq)) == where, (
                f"acknowledged {prod.pid}:{seq} at {where}, log has {seen.get((prod.pid, seq))}")
            acked += 1
    check_random_offsets(bootstrap, topic, logs, rng)
    now = committed(bootstrap, topic)
    assert commits, "no commit was acknowledged: nothing to check"
    for p, c in commits.items():
        hi = logs[p][1]
        assert now.get(p, -1) >= c, f"partition {p}: committed {now.get(p)} < acknowledged {c}"
        assert now[p] <= hi, f"partition {p}: committed {now[p]} past high watermark {hi}"
    return acked, sum(len(r) for _, _, r in logs.values())


def start_again(b, totals, attempts=5):
    """Restarts the broker on its port. While it was down another socket may have taken
    the port (a client's reconnect can get it as its own ephemeral port); the broker then
    refuses to start, and a later attempt succeeds once that socket is gone."""
    for attempt in range(attempts):
        try:
            return b.start(timeout=60)
        except BrokerError:
            tail = b.log_tail(3)
            if "Address already in use" not in tail or attempt == attempts - 1:
                raise
            totals["port_taken"] += 1
            time.sleep(0.5)


@pytest.mark.timeout(120 + 10 * CYCLES)
def test_acknowledged_data_and_commits_survive_sigkill_loops(broker_factory, topic_name):
    print(f"CRASH_LOOP_SEED={SEED} CRASH_LOOP_CYCLES={CYCLES}")
    rng = random.Random(SEED)
    b = broker_factory(shards=2, config={"log_segment_bytes": 256 << 10})
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    producers = []
    commits = {}
    lock = threading.Lock()
    totals = {"kills": 0, "kills_at_start": 0, "kills_before_serving": 0, "failed_plain": 0,
              "failed_idempotent": 0, "port_taken": 0}
    live = []
    try:
        run_cycles(b, topic, rng, producers, commits, lock, totals, live)
    finally:
        # On a failure, stop the load threads so the process can end.
        for x in live:
            x.stop.set()


def run_cycles(b, topic, rng, producers, commits, lock, totals, live):
    started = time.monotonic()
    acked = 0
    for cycle in range(CYCLES):
        cycle_producers = [
            LoadProducer(b.bootstrap, topic, f"c{cycle}i{k}", True, rng) for k in range(2)
        ] + [LoadProducer(b.bootstrap, topic, f"c{cycle}p", False, rng)]
        consumers = [LoadConsumer(b.bootstrap, topic, commits, lock) for _ in range(2)]
        live[:] = cycle_producers + consumers
        for x in live:
            x.thread.start()
        time.sleep(rng.uniform(0.2, 1.5))
        b.kill()
        totals["kills"] += 1
        if rng.random() < 0.25:
            # Kill it again 0-50 ms into its start, mostly before it serves.
            b.launch()
            time.sleep(rng.uniform(0.0, 0.05))
            b.kill()
            totals["kills_at_start"] += 1
            last_start = b.log_path.read_text(errors="replace").rsplit("--- start #", 1)[-1]
            if "serving Kafka" not in last_start:
                totals["kills_before_serving"] += 1
        time.sleep(rng.uniform(0.0, 0.3))
        start_again(b, totals)
        time.sleep(rng.uniform(0.3, 1.0))
        for x in cycle_producers:
            x.finish()
        for x in consumers:
            x.finish()
        for x in consumers:
            assert not x.record_errors, f"cycle {cycle}: consumer saw {x.record_errors}"
        for x in cycle_producers:
            totals["failed_idempotent" if x.idempotent else "failed_plain"] += x.failed
            # An idempotent producer retries through the restart; a failure means the
            # broker refused a retry it should have recognised.
            assert not (x.idempotent and x.failed), (
                f"cycle {cycle}: {x.pid} had {x.failed} failed deliveries: {x.errors}")
        producers += cycle_producers
        with lock:
            snapshot = dict(commits)
        acked, stored = verify(b.bootstrap, topic, producers, snapshot, rng)
        print(f"cycle {cycle}: {acked} acknowledged records checked, {stored} stored, "
              f"commits {sorted(snapshot.items())}, plain failures {totals['failed_plain']}, "
              f"{time.monotonic() - started:.0f} s", flush=True)
    print(f"crash loop: {CYCLES} cycles, {totals['kills']} kills under load "
          f"({totals['kills_at_start']} more 0-50 ms into a start, "
          f"{totals['kills_before_serving']} of them before it served), {acked} acknowledged "
          f"records all present once and in order, {totals['failed_plain']} plain-producer "
          f"sends failed (not acknowledged, not retried), port taken at restart "
          f"{totals['port_taken']} times, nothing lost", flush=True)
