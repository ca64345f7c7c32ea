"""A real full disk: the broker's data directory on a small tmpfs.

Until space runs out produces are acknowledged; then they are refused with
KAFKA_STORAGE_ERROR while fetches, metadata and offset lookups go on being answered and
every acknowledged record stays readable; DeleteRecords on one partition frees segments,
and produces to every partition are accepted again; after a restart everything
acknowledged is still there.

Segments are preallocated when they are created, so a full disk shows at a segment roll,
not in the middle of a write: the roll fails cleanly and is tried again by the next
append.

Needs permission to mount a tmpfs (root, as tests/run.sh runs on CI machines); without it
the test is skipped with the reason.
"""

import errno
import os
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition

from conftest import TMP_ROOT
from helpers import admin_op, consume, create_topic, watermarks

# The offsets partitions preallocate 8 segments of 4 MiB; about 14 MiB are left for data.
DISK_BYTES = 48 << 20
SEGMENT_BYTES = 1 << 20
RECORD_BYTES = 1000


def mounted_tmpfs(size):
    TMP_ROOT.mkdir(parents=True, exist_ok=True)
    mnt = TMP_ROOT / f"small-disk-{time.monotonic_ns()}"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                           str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


@pytest.fixture
def small_disk():
    yield from mounted_tmpfs(DISK_BYTES)


@pytest.fixture
def tiny_disk():
    yield from mounted_tmpfs(26 << 20)


def test_a_broker_that_cannot_open_its_logs_exits_without_serving(tiny_disk, broker_factory):
    """26 MiB holds one shard's offsets partitions (4 segments of 4 MiB) but not both:
    often one shard opens its partitions and the other fails. The broker must exit with
    the reason (it used to wait forever for the failed shard to close), not serve with a
    shard missing."""
    b = broker_factory(shards=2, start=False)
    b.data_dir = tiny_disk / "data"
    b.launch()
    try:
        rc = b.proc.wait(20)
    finally:
        b.kill()
    log = b.log_path.read_text(errors="replace")
    assert rc != 0, log
    assert "No space left on device" in log
    assert "serving Kafka" not in log, log
    b.proc = None  # nothing for the fixture to stop


def produce_until_refused(bootstrap, topic, partitions, start, limit=100000):
    """Sends acks=all records one partition after another until every partition refuses
    one; returns ({(partition, offset): value}, [errors])."""
    acked, errors = {}, []

    def cb(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            errors.append((msg.partition(), err))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                  "linger.ms": 5, "message.timeout.ms": 30000, "log_level": 0})
    refused = set()
    n = start
    rounds = 0
    while len(refused) < partitions and n < start + limit:
        for part in set(range(partitions)) - refused:
            p.produce(topic, f"{n:09d}".encode().ljust(RECORD_BYTES, b"r"), partition=part,
                      on_delivery=cb)
            n += 1
        rounds += 1
        if rounds % 100 == 0:
            p.flush(30)
            refused |= {part for part, _ in errors}
    assert p.flush(30) == 0
    return acked, errors


def test_disk_full_refuses_produces_serves_reads_and_recovers(small_disk, broker_factory,
                                                              topic_name):
    b = broker_factory(shards=2, start=False,
                       config={"log_segment_bytes": SEGMENT_BYTES,
                               "log_retention_check_interval_ms": 200})
    b.data_dir = small_disk / "data"
    b.start()
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=2)

    acked, errors = produce_until_refused(b.bootstrap, topic, 2, 0)
    assert len(acked) > 4 * SEGMENT_BYTES // RECORD_BYTES, f"only {len(acked)} acknowledged"
    codes = {err.code() for _, err in errors}
    assert codes == {KafkaError.KAFKA_STORAGE_ERROR}, f"refusals: {errors[:5]}"

    # Take the last free bytes too (a roll failed on a whole segment; small files would
    # still fit): from here every new block fails.
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"f" * 4096) > 0:
            pass
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)

    # Full: reads, metadata and offset lookups are still answered, and every acknowledged
    # record is there.
    marks = {p: watermarks(b.bootstrap, topic, p) for p in range(2)}
    for p in range(2):
        mine = sorted(off for part, off in acked if part == p)
        assert marks[p][1] >= mine[-1] + 1
        got = consume(b.bootstrap, [(topic, p, 0)], marks[p][1])
        stored = {(r.partition, r.offset): r.value for r in got}
        missing = [k for k in acked if k[0] == p and stored.get(k) != acked[k]]
        assert not missing, f"partition {p}: acknowledged records missing: {missing[:5]}"

    # Free space: DeleteRecords on partition 0 deletes its closed segments.
    low = marks[0][1]
    admin_op(b.bootstrap, "delete_records", [TopicPartition(topic, 0, low)],
             operation_timeout=10)
    assert watermarks(b.bootstrap, topic, 0)[0] == low

    # Writes are accepted again, to both partitions (the space is the file system's).
    more, errors = {}, []
    deadline = time.monotonic() + 20
    while len({p for p, _ in more}) < 2:
        assert time.monotonic() < deadline, f"no produce accepted after freeing: {errors[:5]}"
        got, errors = produce_until_refused(b.bootstrap, topic, 2, 1_000_000, limit=400)
        more.update(got)
    kept = {k: v for k, v in acked.items() if k[0] == 1}

    # A restart keeps everything acknowledged that was not deleted.
    b.restart()
    for p in range(2):
        lo, hi = watermarks(b.bootstrap, topic, p)
        got = consume(b.bootstrap, [(topic, p, lo)], hi - lo)
        stored = {(r.partition, r.offset): r.value for r in got}
        for k, v in {**kept, **more}.items():
            if k[0] == p:
                assert stored.get(k) == v, f"acknowledged {k} lost after the restart"
