"""Malformed frames on raw sockets: the broker must drop (or answer) the offending
connection and keep serving everyone else."""

import random
import socket
import struct
import time

import pytest

import kwire
from helpers import consume, create_topic, msg, produce

CLOSE_TIMEOUT_S = 5.0


def header(api_key, version=1, correlation_id=7):
    return kwire.request_header(api_key, version, correlation_id, "malformed")


def _random_body():
    rng = random.Random(20240607)
    return bytes(rng.getrandbits(8) for _ in range(512))


# name -> the bytes sent on a fresh connection
MALFORMED = {
    # Metadata v1 whose topics array claims 2^31-1 entries; only one follows.
    "huge_array_count": kwire.frame(header(kwire.API_METADATA)
                                    + kwire.i32(0x7FFFFFFF) + kwire.string("t")),
    # A complete frame holding half a request header (api key, api version, 2 bytes).
    "truncated_header": kwire.frame(kwire.i16(kwire.API_METADATA) + kwire.i16(1) + b"\x00\x01"),
    # A frame of random bytes.
    "random_bytes": kwire.frame(_random_body()),
    # A size prefix of 2 GiB - 1, far above request_max_bytes.
    "two_gib_length": struct.pack(">I", 0x7FFFFFFF) + b"\x00" * 64,
    # A negative size prefix.
    "negative_length": struct.pack(">i", -5) + b"\x00" * 64,
    # A well-formed header of an API key no broker knows.
    "unknown_api_key": kwire.frame(header(0x7ABC, 0) + b"\x00" * 16),
    # A Produce v7 whose record set claims more bytes than the frame holds.
    "records_longer_than_frame": kwire.frame(
        header(kwire.API_PRODUCE, 7) + kwire.string(None) + kwire.i16(-1) + kwire.i32(1000)
        + kwire.i32(1) + kwire.string("t") + kwire.i32(1) + kwire.i32(0)
        + kwire.i32(1 << 20) + b"\x00" * 32),
}


def send_malformed(bootstrap, data):
    """Send `data` on a new connection; return how the broker reacted: 'closed' or
    'answered'. Fails if the broker neither closes nor answers within a few seconds."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=CLOSE_TIMEOUT_S) as s:
        try:
            s.sendall(data)
            s.settimeout(CLOSE_TIMEOUT_S)
            reply = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
        except socket.timeout:
            pytest.fail(f"the broker neither closed nor answered within {CLOSE_TIMEOUT_S} s",
                        pytrace=False)
    return "answered" if reply else "closed"


def assert_serving(b):
    """The process is alive and a fresh connection gets ApiVersions answered."""
    assert b.is_running(), f"broker died\n{b.log_tail()}"
    with kwire.Connection.to(b.bootstrap) as conn:
        assert kwire.API_PRODUCE in conn.api_versions()


@pytest.fixture(scope="module")
def fresh_broker(module_broker_factory):
    return module_broker_factory()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frame_drops_only_that_connection(fresh_broker, case):
    # A healthy connection opened before must stay usable.
    with kwire.Connection.to(fresh_broker.bootstrap) as bystander:
        bystander.api_versions()
        reaction = send_malformed(fresh_broker.bootstrap, MALFORMED[case])
        assert reaction in ("closed", "answered")
        assert_serving(fresh_broker)
        bystander._versions = None  # ask again on the old connection
        assert kwire.API_FETCH in bystander.api_versions()


def test_clients_work_after_malformed_frames(fresh_broker, topic_name):
    for data in MALFORMED.values():
        send_malformed(fresh_broker.bootstrap, data)
    # Half a frame, then a hang-up.
    with socket.create_connection((fresh_broker.host, fresh_broker.port)) as s:
        s.sendall(kwire.i32(100) + b"\x00" * 10)
    time.sleep(0.2)
    assert_serving(fresh_broker)

    topic = create_topic(fresh_broker.bootstrap, topic_name())
    produce(fresh_broker.bootstrap, topic, [msg(b"still alive %d" % i) for i in range(10)])
    records = consume(fresh_broker.bootstrap, [(topic, 0, 0)], 10)
    assert [r.value for r in records] == [b"still alive %d" % i for i in range(10)]
    assert fresh_broker.is_running()


def test_connections_past_the_per_ip_limit_are_refused_until_one_closes(broker_factory):
    """connections_max_per_ip refuses the connection past the limit and admits again once
    one of them closes."""
    b = broker_factory(config={"connections_max_per_ip": 3})

    def admitted():
        # A place comes free once the broker has seen the close of whatever held it
        # (the fixture's readiness probe at first, a closed connection later).
        deadline = time.time() + 5
        while True:
            c = kwire.Connection.to(b.bootstrap)
            try:
                assert c.api_versions()
                return c
            except (kwire.ProtocolError, OSError):
                c.close()
                assert time.time() < deadline, "no place came free"
                time.sleep(0.05)

    conns = [admitted() for _ in range(3)]
    for _ in range(3):  # the fourth is refused, every time
        extra = kwire.Connection.to(b.bootstrap)
        extra.sock.settimeout(5)
        with pytest.raises((kwire.ProtocolError, OSError)):
            extra.api_versions()  # closed at accept: no answer
        extra.close()
    conns.pop().close()
    conns.append(admitted())
    for c in conns:
        c.close()
    assert "connections_max_per_ip" in b.log_path.read_text(errors="replace")


def test_idle_and_trickling_connections_are_cut_off(broker_factory):
    """connections_max_idle_ms closes a silent connection and one that trickles a frame
    in (slowloris, claiming 50 MiB), while a client that keeps asking is served."""
    b = broker_factory(config={"connections_max_idle_ms": 800})
    silent, trickler, good = (kwire.Connection.to(b.bootstrap) for _ in range(3))
    trickler.send_bytes(struct.pack(">i", 50 << 20))
    start = time.time()
    cut = set()
    while time.time() - start < 4 and len(cut) < 2:
        good._versions = None  # ask again every round
        assert good.api_versions(), "the well-behaved client was stalled"
        if "trickler" not in cut:
            try:
                trickler.send_bytes(b"x")
            except OSError:
                cut.add("trickler")
        for name, c in (("silent", silent), ("trickler", trickler)):
            c.sock.settimeout(0.01)
            try:
                if c.sock.recv(1) == b"":
                    cut.add(name)
            except socket.timeout:
                pass
            except OSError:
                cut.add(name)
        time.sleep(0.2)
    took = time.time() - start
    assert cut == {"silent", "trickler"}, f"still open after {took:.1f} s: {cut}"
    assert took >= 0.7, "cut off before connections_max_idle_ms"
    for c in (silent, trickler, good):
        c.close()
    assert "connections_max_idle_ms" in b.log_path.read_text(errors="replace")
