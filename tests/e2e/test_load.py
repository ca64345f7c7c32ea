"""Load and soak: 10,000 concurrent connections held while producers and a consumer
group work, and a soak with mixed load, periodic rebalances and connection churn whose
broker memory (RSS) must stay flat.

The soak runs SOAK_SECONDS (default 60; RELIABILITY.md records a 30-minute run:
`SOAK_SECONDS=1800 target/e2e-venv/bin/pytest -s tests/e2e/test_load.py -k soak`).
"""

import os
import random
import resource
import selectors
import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

import kwire
from helpers import confluent_conf, create_topic, rss_mib, watermarks

CONNECTIONS = 10_000
MIB = 1 << 20
SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "60"))


def raise_open_files(n):
    """Raise this process's open-file limit to `n` (inherited by the brokers it starts);
    skip the test if that is not allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(n, hard)))
    except (ValueError, OSError) as e:
        pytest.skip(f"needs {n} open files (limit {soft}/{hard}, cannot raise: {e})")


class Load:
    """Producers (idempotent acks=all, and acks=1) at a steady rate and a consumer group,
    each on its own thread, until stop(). Counts what was acknowledged and consumed and
    the produce latencies."""

    def __init__(self, bootstrap, topic, partitions, rate, group, members=2, value_bytes=200):
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.rate, self.group, self.value = rate, group, b"v" * value_bytes
        self.stopping = threading.Event()  # members
        self.producers_stopping = threading.Event()
        self.lock = threading.Lock()
        self.acked = 0
        self.failed = []
        self.latencies = []  # (monotonic time sent, seconds to acknowledgement)
        self.consumed = {}  # partition -> highest offset consumed + 1
        self.consumer_errors = []
        self.rebalances = 0
        self.threads = [threading.Thread(target=self._produce, args=(conf,), daemon=True)
                        for conf in ({"enable.idempotence": True, "acks": "all"},
                                     {"acks": 1})]
        self.members = []
        for _ in range(members):
            self.add_member()
        for t in self.threads:
            t.start()

    def _produce(self, conf):
        p = Producer(confluent_conf(self.bootstrap, **{"linger.ms": 2, **conf}))
        interval = 2.0 / self.rate  # two producers share the rate
        next_at = time.monotonic()
        i = 0

        def done(err, _msg, sent=None):
            with self.lock:
                if err is not None:
                    self.failed.append(str(err))
                else:
                    self.acked += 1
                    self.latencies.append((sent, time.monotonic() - sent))

        while not self.producers_stopping.is_set():
            now = time.monotonic()
            if now < next_at:
                p.poll(min(next_at - now, 0.05))
                continue
            sent = time.monotonic()
            p.produce(self.topic, self.value, key=str(i).encode(),
                      on_delivery=lambda err, m, sent=sent: done(err, m, sent))
            i += 1
            next_at += interval
            p.poll(0)
        remaining = p.flush(30)
        if remaining:
            with self.lock:
                self.failed.append(f"{remaining} unflushed")

    def add_member(self):
        stop = threading.Event()
        t = threading.Thread(target=self._consume, args=(stop,), daemon=True)
        self.members.append((t, stop))
        t.start()

    def bounce_member(self):
        """One member leaves and a new one joins: two rebalances."""
        t, stop = self.members.pop(0)
        stop.set()
        t.join(30)
        self.add_member()

    def _consume(self, stop):
        def on_assign(_c, _parts):
            with self.lock:
                self.rebalances += 1

        c = Consumer(confluent_conf(self.bootstrap, **{
            "group.id": self.group, "auto.offset.reset": "earliest",
            "enable.auto.commit": True, "auto.commit.interval.ms": 500,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100}))
        c.subscribe([self.topic], on_assign=on_assign)
        try:
            while not stop.is_set() and not self.stopping.is_set():
                for m in c.consume(500, timeout=0.2):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            with self.lock:
                                self.consumer_errors.append(str(m.error()))
                        continue
                    with self.lock:
                        p = m.partition()
                        self.consumed[p] = max(self.consumed.get(p, 0), m.offset() + 1)
        finally:
            c.close()

    def stop(self, catch_up_s=60):
        """Stops the producers, lets the group consume up to every partition's high
        watermark (for at most `catch_up_s`), stops the members, and returns
        {partition: (high watermark, consumed up to)}."""
        self.producers_stopping.set()
        for t in self.threads:
            t.join(60)

        def high_watermarks():
            return {p: watermarks(self.bootstrap, self.topic, p)[1]
                    for p in range(self.partitions)}
        # acks=1 records are acknowledged once appended and readable once the background
        # flush (log_flush_interval_ms) has run, so the last ones may still be below
        # the high watermarks for a moment (a CI run read 8 of 45,805 short). Wait for
        # them, briefly: data that never shows up still fails the callers' checks.
        hws = high_watermarks()
        settle = time.monotonic() + 10
        while sum(hws.values()) < self.acked and time.monotonic() < settle:
            time.sleep(0.05)
            hws = high_watermarks()
        deadline = time.monotonic() + catch_up_s
        while time.monotonic() < deadline:
            with self.lock:
                if all(self.consumed.get(p, 0) >= hw for p, hw in hws.items()):
                    break
            time.sleep(0.2)
        self.stopping.set()
        for t, _ in self.members:
            t.join(60)
        with self.lock:
            return {p: (hw, self.consumed.get(p, 0)) for p, hw in hws.items()}

    def p99_ms(self, since=0.0, until=float("inf")):
        with self.lock:
            xs = sorted(d for t, d in self.latencies if since <= t < until)
        if not xs:
            return None, 0
        return xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000, len(xs)


def api_versions_frame(correlation_id):
    return kwire.frame(kwire.request_header(kwire.API_API_VERSIONS, 0, correlation_id, "idle"))


def ask_all(conns, correlation_id, timeout=60):
    """Send ApiVersions on every connection at once and read every answer; return how
    many were answered correctly."""
    for s in conns:
        s.setblocking(True)
        s.sendall(api_versions_frame(correlation_id))
        s.setblocking(False)
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = bytearray()
    answered = 0
    deadline = time.monotonic() + timeout
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(s)
                del bufs[s]
                continue
            buf = bufs[s]
            buf += chunk
            if len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                cid, error_code = struct.unpack(">ih", buf[4:10])
                answered += cid == correlation_id and error_code == 0
                sel.unregister(s)
                del bufs[s]
    sel.close()
    return answered


def test_ten_thousand_connections_with_active_clients(broker_factory, topic_name):
    """10,000 connections, each asking once and then idle, are held while two producers
    and a two-member consumer group run: the producers' p99 latency is compared with
    the same run before the connections, every connection still answers at the end, and
    nothing acknowledged goes missing."""
    raise_open_files(CONNECTIONS + 4096)
    b = broker_factory(shards=2)
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=4)
    load = Load(b.bootstrap, topic, 4, rate=2000, group=f"g-{topic}")
    conns = []
    try:
        time.sleep(8)  # the group settles; the last 4 s are the baseline
        t_open = time.monotonic()
        rss_before = rss_mib(b)
        host, port = b.bootstrap.rsplit(":", 1)
        for _ in range(CONNECTIONS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect((host, int(port)))
            conns.append(s)
        opened = time.monotonic() - t_open
        first = ask_all(conns, 1)
        t_held = time.monotonic()
        time.sleep(8)  # held idle while the load goes on
        t_end = time.monotonic()
        again = ask_all(conns, 2)
        rss_held = rss_mib(b)
    finally:
        ends = load.stop()
        for s in conns:
            s.close()
    base_p99, base_n = load.p99_ms(since=t_open - 4, until=t_open)
    held_p99, held_n = load.p99_ms(since=t_held, until=t_end)
    print(f"\n{CONNECTIONS} connections opened in {opened:.1f} s; answered {first} then "
          f"{again}; broker RSS {rss_before:.0f} -> {rss_held:.0f} MiB; produce p99 "
          f"{base_p99:.1f} ms ({base_n} acks in 4 s) before, {held_p99:.1f} ms ({held_n} "
          f"acks in 8 s) while held; {load.acked} acked, group at {ends}; assignments "
          f"{load.rebalances}")
    assert first == CONNECTIONS and again == CONNECTIONS
    assert not load.failed, load.failed[:5]
    assert not load.consumer_errors, load.consumer_errors[:5]
    assert held_n > 0.5 * load.rate * (t_end - t_held), "the producers were held up"
    # What the idle connections cost the active clients' latency is printed above and
    # recorded in RELIABILITY.md, not asserted: on this 2-vCPU host the same run has
    # measured a p99 of 23 -> 324 ms and 258 -> 423 ms (noise of the host, not of the
    # connections), so no bound is both meaningful and stable. The producers keeping
    # their rate (above) and nothing lost (below) are the pass conditions.
    # The group consumed everything acknowledged: up to every high watermark, which
    # together hold at least every acknowledged record.
    assert all(consumed >= hw for hw, consumed in ends.values()), ends
    assert sum(hw for hw, _ in ends.values()) >= load.acked


@pytest.mark.timeout(SOAK_SECONDS + 240)
def test_soak_memory_stays_flat(broker_factory, topic_name):
    """Mixed load for SOAK_SECONDS: two producers with retention deleting behind them, a
    three-member group with a member replaced every 10 s (rebalances), and 200
    connections opened, used and closed every second. The broker's RSS, sampled every
    second, must stop growing after the first third: the last third's median is within
    16 MiB of the middle third's, and its peak within 64 MiB of that median."""
    seconds = SOAK_SECONDS
    assert seconds >= 30
    raise_open_files(4096)
    b = broker_factory(shards=2, config={
        "tail_cache_bytes": int(os.environ.get("SOAK_TAIL_CACHE_BYTES", 8 * MIB)),
        "log_retention_check_interval_ms": 1000,
    })
    topic = topic_name()
    # Retention reaches its steady state (6 x 8 MiB) within ~12 s at the default rate.
    create_topic(b.bootstrap, topic, partitions=6,
                 config={"retention.bytes": str(8 * MIB), "segment.bytes": str(2 * MIB)})
    load = Load(b.bootstrap, topic, 6, rate=int(os.environ.get("SOAK_RATE", "4000")),
                group=f"g-{topic}", members=3, value_bytes=1000)
    rng = random.Random(int(os.environ.get("SOAK_SEED", "1")))
    host, port = b.bootstrap.rsplit(":", 1)
    samples = []
    churned = 0
    start = time.monotonic()
    next_bounce = start + 10
    try:
        while time.monotonic() - start < seconds:
            samples.append((time.monotonic() - start, rss_mib(b)))
            conns = [socket.create_connection((host, int(port))) for _ in range(200)]
            assert ask_all(conns, rng.randrange(1, 1 << 30), timeout=10) == len(conns)
            for s in conns:
                s.close()
            churned += len(conns)
            if time.monotonic() >= next_bounce:
                load.bounce_member()
                next_bounce += 10
            time.sleep(max(0.0, 1 - (time.monotonic() - start - samples[-1][0])))
    finally:
        ends = load.stop()
    third = seconds / 3
    middle_samples = sorted(r for t, r in samples if third <= t < 2 * third)
    last_samples = sorted(r for t, r in samples if t >= 2 * third)
    middle, last = middle_samples[-1], last_samples[-1]
    middle_median = middle_samples[len(middle_samples) // 2]
    last_median = last_samples[len(last_samples) // 2]
    first = samples[0][1]
    minutes = {}
    for t, r in samples:
        minutes[int(t // 60)] = max(minutes.get(int(t // 60), 0), r)
    print(f"\nsoak {seconds} s: {load.acked} acked; (high watermark, consumed up to) per "
          f"partition {ends}; {load.rebalances} assignments, {churned} connections churned; RSS "
          f"{first:.0f} MiB at start; middle third median {middle_median:.1f}, peak "
          f"{middle:.1f} MiB; last third median {last_median:.1f}, peak {last:.1f} MiB; "
          f"per-minute peaks {minutes}")
    assert not load.failed, load.failed[:5]
    assert not load.consumer_errors, load.consumer_errors[:5]
    assert load.rebalances >= seconds // 10, "members were replaced but few rebalances"
    # Growth shows in the typical level (a leak or creeping allocator retention raises
    # it); a burst of load shows as a peak that falls back. The median must not rise
    # by 16 MiB, and a peak must stay within 64 MiB of the middle third's median.
    assert last_median - middle_median < 16, \
        f"RSS's median grew {last_median - middle_median:.1f} MiB in the last third"
    assert last - middle_median < 64, \
        f"RSS peaked {last - middle_median:.1f} MiB above the middle third's median"
    # The group consumed up to the end of every partition once the producers stopped.
    assert all(consumed >= hw for hw, consumed in ends.values()), ends
