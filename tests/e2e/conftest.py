"""Fixtures of the end-to-end suite: a real `corelog serve` process driven by stock clients.

- `broker`: one broker for the whole session (tests on it use distinct topic names);
- `broker_factory` / `module_broker_factory`: fresh brokers for one test (restart,
  retention) or one module (malformed frames, two shards), each stopped by SIGTERM when
  that scope ends, and which must then exit 0 within 20 s;
- `topic_name`: a new topic name, unique in the session, per call;
- `kcat_bin`: the path of kcat (or kafkacat).

The binary is $CORELOG_BIN, else <repo>/target/release/corelog. `pytest --shards N`
sets the shard count of every broker that does not choose its own (default 2, so that
most requests cross the shard router). Each broker writes its stderr to
a file; a failing test's report shows the last lines of every broker it used.
"""

import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from helpers import SEGMENT_BYTES

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "release" / "corelog"
# Data dirs live on the repository's disk (not /tmp, which may be a tmpfs without
# O_DIRECT); target/ is git-ignored.
TMP_ROOT = REPO / "target" / "e2e-tmp"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 150

# Every broker's config file starts from these keys.
BASE_CONFIG = {"advertised_host": "127.0.0.1", "node_id": 1, "log_segment_bytes": SEGMENT_BYTES}
# The shared broker: auto-created topics get 3 partitions.
SHARED_CONFIG = {"auto_create_topics": True, "num_partitions": 3}


class BrokerError(AssertionError):
    pass


def free_port():
    """A free port below the kernel's ephemeral range. A port from that range (what
    binding port 0 gives) can be handed to a client's outgoing connection while the
    broker is down: a reconnect to 127.0.0.1:P from local port P then connects to itself
    (TCP simultaneous open), holds the port so the broker cannot restart on it, and
    waits for answers from itself. The crash loop met exactly that in CI: the restart
    failed with EADDRINUSE and two consumers hung in commit().

    A port is handed out once per test run, so a stopped broker keeps its port for its
    restart."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    rng = random.SystemRandom()
    for _ in range(200):
        if low > 2048:
            port = rng.randrange(max(1024, low - 16384), low)
        else:  # no room below the range: any free port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port found below the ephemeral range (from {low})")


_PORTS_GIVEN = set()


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string


class Broker:
    """One `corelog serve` process on a private data dir and a free loopback port."""

    registry = []  # every broker of the session, for failure reports

    def __init__(self, binary, shards=1, config=None, extra_args=(), name="broker"):
        TMP_ROOT.mkdir(parents=True, exist_ok=True)
        self.binary = str(binary)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=TMP_ROOT))
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "corelog.toml"
        self.log_path = self.workdir / "stderr.log"
        self.shards = shards
        self.config = {**BASE_CONFIG, **(config or {})}
        self.extra_args = list(extra_args)
        self.name = name
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc = None
        self.starts = 0
        self.last_active = time.monotonic()
        Broker.registry.append(self)

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def command(self):
        return [
            self.binary, "serve",
            "--listen", self.bootstrap,
            "--data-dir", str(self.data_dir),
            "--shards", str(self.shards),
            "--config", str(self.config_path),
            *self.extra_args,
        ]

    def write_config(self):
        lines = [f"{k} = {toml_value(v)}" for k, v in self.config.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=READY_TIMEOUT_S):
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self):
        """Start the process without waiting for it to accept connections."""
        assert not self.is_running(), "broker already running"
        self.write_config()
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("CORELOG_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain log files
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env)
        self.last_active = time.monotonic()

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise BrokerError(f"{self.name} exited with code {rc} before accepting "
                                  f"connections\n{self.log_tail()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
            except OSError:
                pass
            else:
                # Something took the connection; it must be this process, which says so
                # once it listens. (CI once saw a restart that failed with EADDRINUSE
                # count as started, and its clients hang.)
                if self.proc.poll() is None and self.serving_since_last_start():
                    return
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.name} did not accept connections on {self.bootstrap} "
                                  f"within {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    def serving_since_last_start(self):
        """The log says, since the last start, that the broker listens."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return False
        return "serving Kafka on" in text.rsplit("--- start #", 1)[-1]

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then require exit code 0 within `timeout` seconds."""
        if self.proc is None:
            return
        self.last_active = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise BrokerError(f"{self.name} did not exit within {timeout} s of SIGTERM\n"
                                  f"{self.log_tail()}") from None
        rc = self.proc.returncode
        self.last_active = time.monotonic()
        if rc != 0:
            raise BrokerError(f"{self.name} exited with code {rc} (expected 0 after SIGTERM)\n"
                              f"{self.log_tail()}")

    def kill(self):
        if self.is_running():
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        """Clean stop (asserting exit 0) and start again on the same data dir and port."""
        self.stop()
        return self.start()

    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no stderr file)"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def partition_dir(self, topic, partition):
        """DATA_DIR/<topic>-<partition>, searched below the data dir too."""
        name = f"{topic}-{partition}"
        direct = self.data_dir / name
        if direct.is_dir():
            return direct
        found = [p for p in self.data_dir.rglob(name) if p.is_dir()]
        return found[0] if found else None

    def segment_base_offsets(self, topic, partition):
        """Base offsets of the partition's segment files (<20-digit base>.log), sorted."""
        d = self.partition_dir(topic, partition)
        if d is None:
            return []
        return sorted(int(p.stem) for p in d.glob("*.log") if re.fullmatch(r"\d{20}", p.stem))

    def cleanup(self):
        self.kill()
        if not os.environ.get("CORELOG_E2E_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)


class BrokerSet:
    """Brokers started for one scope, stopped (each must exit 0) when it ends."""

    def __init__(self, binary, default_shards, name):
        self.binary = binary
        self.default_shards = default_shards
        self.name = name
        self.brokers = []

    def make(self, shards=None, config=None, extra_args=(), start=True):
        b = Broker(self.binary, shards or self.default_shards, config, extra_args,
                   name=f"{self.name}-{len(self.brokers)}")
        if start:
            try:
                b.start()
            except BrokerError:
                b.cleanup()  # its failure is reported once, by start()
                raise
        self.brokers.append(b)
        return b

    def close(self):
        errors = []
        for b in self.brokers:
            try:
                b.stop()
            except BrokerError as e:
                errors.append(str(e))
            finally:
                b.cleanup()
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


def pytest_addoption(parser):
    parser.addoption("--shards", type=int, default=2,
                     help="shards of the corelog brokers (default 2)")


@pytest.fixture(scope="session")
def corelog_bin():
    path = Path(os.environ.get("CORELOG_BIN", DEFAULT_BIN))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"corelog binary not found at {path}: build it with "
                    "`cargo build --release --locked -p corelog` or set CORELOG_BIN",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def shards(pytestconfig):
    return pytestconfig.getoption("--shards")


@pytest.fixture(scope="session")
def broker(corelog_bin, shards):
    """The session's shared broker."""
    brokers = BrokerSet(corelog_bin, shards, "shared")
    try:
        yield brokers.make(config=SHARED_CONFIG)
    finally:
        brokers.close()


@pytest.fixture
def broker_factory(corelog_bin, shards, request):
    """make(shards=None, config=None, extra_args=()) -> a started fresh Broker."""
    brokers = BrokerSet(corelog_bin, shards, re.sub(r"\W+", "-", request.node.name)[:40])
    try:
        yield brokers.make
    finally:
        brokers.close()


@pytest.fixture(scope="module")
def module_broker_factory(corelog_bin, shards, request):
    """Like broker_factory, for brokers shared by the tests of one module."""
    brokers = BrokerSet(corelog_bin, shards, request.module.__name__)
    try:
        yield brokers.make
    finally:
        brokers.close()


@pytest.fixture(scope="session")
def kcat_bin():
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat is not installed (tests/run.sh installs Debian's kcat)",
                    pytrace=False)
    return path


_session_tag = uuid.uuid4().hex[:6]


@pytest.fixture
def topic_name(request):
    """topic_name() -> a new topic name, derived from the test's name, on every call."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:120]
    counter = itertools.count()
    return lambda: f"{base}-{next(counter)}-{_session_tag}"


# --- broker stderr in failure reports -----------------------------------------------------

_test_started = [0.0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _test_started[0] = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or (call.excinfo and call.excinfo.errisinstance(BrokerError)):
        return  # a BrokerError's message already ends with the broker's log
    for b in Broker.registry:
        if b.log_path.exists() and (b.is_running() or b.last_active >= _test_started[0]):
            report.sections.append((f"corelog stderr: {b.name}", b.log_tail()))
