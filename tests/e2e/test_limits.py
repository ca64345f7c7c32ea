"""Memory budgets on raw sockets: requests and answers in flight are bounded per shard
(shard_request_bytes_in_flight_max, shard_response_bytes_in_flight_max), clients that
send or read slowly hold nothing for longer than connections_max_idle_ms, and
well-behaved clients are served meanwhile."""

import random
import socket
import struct
import threading
import time

import kwire
from helpers import create_topic, rss_mib, wait_until

MIB = 1 << 20


def timed(what, f, limit_s):
    start = time.monotonic()
    out = f()
    took = time.monotonic() - start
    assert took < limit_s, f"{what} took {took:.2f} s (another client held it up)"
    return out


def produce_frame(topic, batch, correlation_id, acks=1):
    header = kwire.request_header(kwire.API_PRODUCE, 7, correlation_id, "limits")
    return kwire.frame(header + kwire.produce_body({(topic, 0): batch}, acks=acks))


def raw_socket(bootstrap, rcvbuf=None):
    host, port = bootstrap.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # Before connecting, so that the window stays small.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, int(port)))
    return s


def recv_frame(s):
    def exact(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return bytes(buf)
    size = int.from_bytes(exact(4), "big")
    return exact(size)


def test_large_requests_wait_for_the_shard_budget(broker_factory, topic_name):
    """30 connections each send most of a 3 MiB produce and stop: only what the 8 MiB
    shard budget allows is read into memory (the rest waits in the sockets), small
    requests of another client are served meanwhile, and once the senders finish, every
    produce is answered and stored."""
    b = broker_factory(shards=1, config={
        "request_max_bytes": 4 * MIB,
        "message_max_bytes": 4 * MIB,
        "connection_bytes_in_flight_max": 4 * MIB,
        "shard_request_bytes_in_flight_max": 8 * MIB,
        "connections_max_idle_ms": 60000,
    })
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=1)
    rng = random.Random(20261121)
    batch = kwire.encode_batch([(None, rng.randbytes(3 * MIB))])
    good = kwire.Connection.to(b.bootstrap)
    good.api_versions()
    before = rss_mib(b)

    senders = []
    for i in range(30):
        s = raw_socket(b.bootstrap)
        data = produce_frame(topic, batch, i)
        s.setblocking(False)
        senders.append([s, data, 0])
    # Push the first 2.5 MiB of every frame, as far as the sockets take it.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for entry in senders:
            s, data, sent = entry
            if sent >= int(2.5 * MIB):
                continue
            try:
                entry[2] += s.send(data[sent:int(2.5 * MIB)])
            except BlockingIOError:
                pass
        time.sleep(0.01)
    pushed = sum(e[2] for e in senders)
    # The kernel took far more than the budget (else the test shows nothing).
    assert pushed > 30 * MIB, f"only {pushed} bytes pushed"
    time.sleep(0.5)
    grown = rss_mib(b) - before
    print(f"pushed {pushed / MIB:.0f} MiB on 30 connections; broker RSS grew {grown:.1f} MiB")
    # Two frames fit the budget (read in 4 MiB steps); without it, every connection's
    # bytes are read into memory (~2.5 MiB each, 75 MiB).
    assert grown < 30, f"RSS grew {grown:.1f} MiB with 8 MiB of requests allowed"

    # Small requests of another client are not queued behind the large ones.
    small = kwire.encode_batch([(b"k", b"small")])
    for _ in range(5):
        good._versions = None
        # Far below connections_max_idle_ms, which is how long a queued request could wait.
        timed("ApiVersions", good.api_versions, 5.0)
        res = timed("a small produce", lambda: good.produce({(topic, 0): small}, acks=1), 5.0)
        assert res[(topic, 0)].error_code == 0

    # Finish every frame; each is answered.
    def finish(entry):
        s, data, sent = entry
        s.setblocking(True)
        s.settimeout(30)
        s.sendall(data[sent:])
        body = kwire.Reader(recv_frame(s))
        body.i32()  # correlation id
        return kwire.decode_produce_response(body.data[body.pos:], 7)[(topic, 0)]

    results = [None] * len(senders)

    def run(i):
        results[i] = finish(senders[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(senders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None and r.error_code == 0 for r in results), results
    offsets = sorted(r.base_offset for r in results)
    assert len(set(offsets)) == 30
    # acks=1 data is readable once flushed, a few ms later.
    wait_until(lambda: good.fetch({(topic, 0): 35})[(topic, 0)].high_watermark == 35,
               "35 records readable")
    for s, _, _ in senders:
        s.close()
    good.close()


def test_slow_readers_shrink_fetches_instead_of_growing_memory(broker_factory, topic_name):
    """20 clients ask for 50 MiB fetches of a 10 MiB partition and read nothing: the
    8 MiB response budget bounds what the broker holds for them, another consumer still
    reads everything (in smaller answers) and a producer is served, and after
    connections_max_idle_ms the slow readers are cut off and fetches grow again."""
    idle_ms = 4000
    b = broker_factory(shards=1, config={
        "shard_response_bytes_in_flight_max": 8 * MIB,
        "tail_cache_bytes": 1 * MIB,
        "connections_max_idle_ms": idle_ms,
    })
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=1)
    rng = random.Random(7)
    batch = kwire.encode_batch([(None, rng.randbytes(128 << 10))])
    batches = 80
    with kwire.Connection.to(b.bootstrap) as p:
        for _ in range(batches):
            assert p.produce({(topic, 0): batch}, acks=1)[(topic, 0)].error_code == 0
    before = rss_mib(b)

    slow = []
    for i in range(20):
        s = raw_socket(b.bootstrap, rcvbuf=4096)
        header = kwire.request_header(kwire.API_FETCH, 4, i, "slow-reader")
        body = kwire.fetch_body({(topic, 0): rng.randrange(batches // 2)}, max_wait_ms=0,
                                max_bytes=50 * MIB, partition_max_bytes=50 * MIB)
        s.sendall(kwire.frame(header + body))
        slow.append(s)
    time.sleep(1.0)
    grown = rss_mib(b) - before
    print(f"20 slow readers: broker RSS grew {grown:.1f} MiB")
    # Without the budget each slow reader holds up to 10 MiB read from disk.
    assert grown < 48, f"RSS grew {grown:.1f} MiB with 8 MiB of answers allowed"

    # Meanwhile a consumer reads the whole partition and a producer is served.
    with kwire.Connection.to(b.bootstrap) as c, kwire.Connection.to(b.bootstrap) as p:
        offset, sizes = 0, []
        deadline = time.monotonic() + 20
        while offset < batches and time.monotonic() < deadline:
            got = timed("a fetch", lambda: c.fetch({(topic, 0): offset}, max_wait_ms=0,
                                                   max_bytes=50 * MIB,
                                                   partition_max_bytes=50 * MIB), 5.0)
            res = got[(topic, 0)]
            assert res.error_code == 0
            assert res.batches, "a fetch returned nothing while data was there"
            sizes.append(len(res.batches))
            offset = res.batches[-1].base_offset + len(res.batches[-1].records)
        assert offset == batches, f"read up to {offset} of {batches}"
        res = timed("a produce", lambda: p.produce(
            {(topic, 0): kwire.encode_batch([(None, b"x")])}, acks=1), 5.0)
        assert res[(topic, 0)].error_code == 0
        print(f"batches per fetch while slow readers held answers: {sizes}")
        assert min(sizes) >= 1

    # The slow readers are cut off once they have read nothing for idle_ms (the consumer
    # and the producer are closed first, so that only slow readers sit idle).
    time.sleep(idle_ms / 1000 + 1.5)
    cut_short = 0
    for s in slow:
        s.settimeout(5)
        got = bytearray()
        try:
            while chunk := s.recv(1 << 20):
                got += chunk
        except OSError:
            pass
        whole = len(got) >= 4 and len(got) == 4 + int.from_bytes(got[:4], "big")
        cut_short += not whole
    # A reader whose answer did not fit the kernel's socket buffers is cut off in the
    # write, and gets part of it; the others got their answers into those buffers and
    # are cut off for sending no next request. (How much the kernel buffers varies:
    # one host took a whole 6.3 MiB answer for a reader with a 4 KiB receive buffer, so
    # no reader was cut off in the write here. test_a_failed_write_frees_the_answers_
    # queued_behind_it makes sure of one with 21 MiB of answers.)
    log = b.log_path.read_text(errors="replace")
    unread = log.count("read nothing for")
    silent = log.count("no whole request within")
    print(f"slow readers cut off: {unread} in the write, {silent} waiting for a request")
    assert unread == cut_short and unread + silent == 20, (cut_short, log[-3000:])
    with kwire.Connection.to(b.bootstrap) as c:
        got = c.fetch({(topic, 0): 0}, max_wait_ms=0, max_bytes=50 * MIB,
                      partition_max_bytes=50 * MIB)[(topic, 0)]
        assert len(got.batches) > 10, "fetches stayed small after the slow readers left"
    for s in slow:
        s.close()


def test_a_failed_write_frees_the_answers_queued_behind_it(broker_factory, topic_name):
    """One connection pipelines an acks=all produce and three fetches of 7 MiB, then
    declares a 4 MiB request and reads nothing. When its answers are queued behind the
    produce's (timing: the fetches are served from memory before the produce's flush
    completes), they fill its 16 MiB budget and the request waits for room that the
    failed write alone does not give back. The connection must end once the write times
    out, freeing its place in connections_max_per_ip (1 here). The drop of the queued
    answers is checked deterministically by the Rust test
    `connection::tests::a_failed_write_gives_back_the_units_of_the_answers_queued_behind_it`;
    this one checks the whole path end to end."""
    idle_ms = 1000
    b = broker_factory(shards=1, config={
        "request_max_bytes": 4 * MIB,
        "connection_bytes_in_flight_max": 16 * MIB,
        "connections_max_per_ip": 1,
        # Fetches are served from memory, so their answers are ready (and queued
        # behind the produce's) before the produce's flush is.
        "tail_cache_bytes": 64 * MIB,
        "connections_max_idle_ms": idle_ms,
    })
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=1)
    batch = kwire.encode_batch([(None, random.Random(3).randbytes(128 << 10))])

    def admitted():
        """A connection this IP's one place admitted (answered ApiVersions), or None
        while the place is taken (a closed connection frees it a moment later)."""
        try:
            c = kwire.Connection.to(b.bootstrap, timeout=2)
        except OSError:
            return None
        try:
            c.api_versions()
            return c
        except (OSError, kwire.ProtocolError):
            c.close()
            return None

    with wait_until(admitted, "a connection admitted") as p:
        for _ in range(56):
            assert p.produce({(topic, 0): batch}, acks=1)[(topic, 0)].error_code == 0
    # The pipelining connection: admitted once the producer's place is free.
    def pipeliner():
        s = raw_socket(b.bootstrap, rcvbuf=4096)
        s.settimeout(2)
        try:
            s.sendall(kwire.frame(kwire.request_header(kwire.API_API_VERSIONS, 0, 0, "p")))
            recv_frame(s)
            return s
        except OSError:
            s.close()
            return None

    s = wait_until(pipeliner, "the pipelining connection admitted")
    s.sendall(produce_frame(topic, kwire.encode_batch([(None, b"x")]), 1, acks=-1))
    for i in range(2, 5):
        header = kwire.request_header(kwire.API_FETCH, 4, i, "pipeliner")
        s.sendall(kwire.frame(header + kwire.fetch_body(
            {(topic, 0): 0}, max_wait_ms=0, max_bytes=50 * MIB, partition_max_bytes=50 * MIB)))
    s.sendall(struct.pack(">i", 4 * MIB))
    # Read nothing until the write has timed out (it may take a few idle periods: a
    # write that moves any bytes starts the period again), then leave.
    time.sleep(idle_ms / 1000 * 4 + 0.5)
    s.close()
    wait_until(admitted, "the pipelining connection to end", timeout=10).close()
    assert "read nothing for" in b.log_path.read_text(errors="replace")


def test_a_trickled_request_is_cut_off_at_the_request_pace(broker_factory, topic_name):
    """A client declares a 6 MiB produce, sends 64 KiB of it, then a byte every 100 ms
    (never idle for long): it holds 6 MiB of the shard's 8 MiB request budget, so
    another client's 3 MiB produce waits. The trickler falls behind the request pace
    (1 s, plus 1 s per MiB received) and is cut off within seconds, not after
    connections_max_idle_ms (60 s here); the waiting produce is then answered and
    stored. With the pace off (a 100 s request_read_timeout_ms) the produce waits past
    the test's 30 s socket timeout."""
    b = broker_factory(shards=1, config={
        "request_max_bytes": 8 * MIB,
        "message_max_bytes": 8 * MIB,
        "connection_bytes_in_flight_max": 8 * MIB,
        "shard_request_bytes_in_flight_max": 8 * MIB,
        "connections_max_idle_ms": 60000,
        "request_read_timeout_ms": 1000,
        "request_read_min_bytes_per_sec": MIB,
    })
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=1)
    rng = random.Random(20261122)
    big = produce_frame(topic, kwire.encode_batch([(None, rng.randbytes(6 * MIB))]), 1)
    trickler = raw_socket(b.bootstrap)
    trickler.sendall(big[:64 << 10])
    stop = threading.Event()
    cut = threading.Event()

    def trickle():
        sent = 64 << 10
        while not stop.is_set():
            try:
                trickler.sendall(big[sent:sent + 1])
            except OSError:
                cut.set()
                return
            sent += 1
            time.sleep(0.1)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        time.sleep(0.3)  # the trickler's request holds its budget first
        with kwire.Connection.to(b.bootstrap, timeout=30) as p:
            batch = kwire.encode_batch([(None, rng.randbytes(3 * MIB))])
            start = time.monotonic()
            res = p.produce({(topic, 0): batch}, acks=1)[(topic, 0)]
            waited = time.monotonic() - start
            print(f"the 3 MiB produce waited {waited:.1f} s behind the trickler")
            assert res.error_code == 0
            # It waited for the trickler (1 s + 4 s for the first 4 MiB step), and not
            # for connections_max_idle_ms.
            assert 2.0 < waited < 15.0, waited
            # acks=1 data is readable once flushed, a few ms later.
            wait_until(lambda: p.fetch({(topic, 0): 0})[(topic, 0)].high_watermark == 1,
                       "the produce readable")
        log = b.log_path.read_text(errors="replace")
        assert "request too slow" in log, log[-3000:]
        wait_until(cut.is_set, "the trickler's connection closed", timeout=10)
    finally:
        stop.set()
        t.join(5)
        trickler.close()


def test_quiet_small_requests_do_not_spend_the_shard_budget(broker_factory, topic_name):
    """300 connections each declare a 128 KiB request (the largest that never waits for
    the shard's request budget), send 100 bytes of it and go quiet. A small request is
    counted on the shard once its bytes are in, and its buffer grows with what arrives,
    so another client's 3 MiB produce, which must take from the 8 MiB shard budget, is
    answered at once, not after the quiet ones are cut off (request_read_timeout_ms,
    60 s here). Counted at their declared size (300 x 128 KiB = 37.5 MiB), as before,
    they kept it waiting until then. (The memory they pin is checked by
    socket::tests::memory_follows_the_bytes_that_arrived.)"""
    b = broker_factory(shards=1, config={
        "request_max_bytes": 4 * MIB,
        "message_max_bytes": 4 * MIB,
        "shard_request_bytes_in_flight_max": 8 * MIB,
        "connections_max_idle_ms": 120000,
        "request_read_timeout_ms": 60000,
    })
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=1)
    rng = random.Random(20261123)
    quiet = []
    try:
        for _ in range(300):
            s = raw_socket(b.bootstrap)
            s.sendall(struct.pack(">i", 128 << 10) + rng.randbytes(100))
            quiet.append(s)
        time.sleep(1.0)  # every size read and its request begun
        with kwire.Connection.to(b.bootstrap, timeout=30) as p:
            batch = kwire.encode_batch([(None, rng.randbytes(3 * MIB))])
            res = timed("a 3 MiB produce", lambda: p.produce({(topic, 0): batch}, acks=1),
                        10.0)
            assert res[(topic, 0)].error_code == 0
        # The quiet connections are still open: nothing cut them off early.
        assert "request too slow" not in b.log_path.read_text(errors="replace")
    finally:
        for s in quiet:
            s.close()


def test_an_urgent_byte_mid_request_does_not_stall_the_shard(broker_factory, topic_name):
    """A client declares a 16 KiB request, sends 8 KiB of it (the first step of its
    buffer), one byte with MSG_OOB and a few more. The broker asked FIONREAD how much
    was waiting, which counts only up to the urgent mark: 0, taken for "wait", whose
    readiness check then returned at once, for ever, without yielding. The shard span
    and every other connection on it stalled (found in review). Another client must be
    answered meanwhile, and the urgent client cut off by the request pace."""
    b = broker_factory(shards=1, config={"request_read_timeout_ms": 1000})
    topic = topic_name()
    create_topic(b.bootstrap, topic, partitions=1)
    s = raw_socket(b.bootstrap)
    try:
        s.sendall(struct.pack(">i", 16 << 10) + b"\x00" * (8 << 10))
        s.send(b"!", socket.MSG_OOB)
        s.sendall(b"\x00" * 10)
        time.sleep(0.3)
        with kwire.Connection.to(b.bootstrap, timeout=10) as c:
            timed("ApiVersions", c.api_versions, 5.0)
            res = timed("a produce", lambda: c.produce(
                {(topic, 0): kwire.encode_batch([(None, b"x")])}, acks=1), 5.0)
            assert res[(topic, 0)].error_code == 0
        wait_until(lambda: "request too slow" in b.log_path.read_text(errors="replace"),
                   "the urgent client cut off at the request pace", timeout=10)
    finally:
        s.close()
