"""`corelog tune` end to end: it checks the system, measures a real directory's device
(briefly here), writes a profile, and a broker started on that directory takes the
profile's settings (settings in its config file win); a bad profile stops it starting."""

import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from conftest import TMP_ROOT, BrokerError
from helpers import consume, create_topic, msg, produce

TUNE_TIMEOUT_S = 120


def tune(corelog_bin, data_dir, *extra):
    return subprocess.run(
        [str(corelog_bin), "tune", "--data-dir", str(data_dir), "--point-ms", "20",
         "--file-mib", "8", *extra],
        capture_output=True, text=True, timeout=TUNE_TIMEOUT_S)


def profile_settings(text):
    """The [broker] settings of a profile file: {key: int}."""
    return tomllib.loads(text)["broker"]


@pytest.fixture
def data_dir():
    """A fresh directory on the repository's disk (/tmp may be a tmpfs, which the probe
    refuses)."""
    TMP_ROOT.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="tune-", dir=TMP_ROOT))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_tune_writes_a_profile_the_broker_applies(corelog_bin, broker_factory, data_dir):
    data = data_dir
    out = tune(corelog_bin, data)
    assert out.returncode == 0, out.stdout + out.stderr
    for section in ("System checks", "io_uring", "memlock", "swappiness", "clocksource",
                    "Device measurement", "fdatasync", "Profile"):
        assert section in out.stdout, section
    assert "dry run" in out.stdout
    profile = data / "tuning.toml"
    settings = profile_settings(profile.read_text())
    assert set(settings) == {"write_chunk_bytes", "write_depth", "flush_interval_ms",
                             "ring_depth"}
    # Nothing is left behind but the profile.
    assert sorted(p.name for p in data.iterdir()) == ["tuning.toml"]

    # A broker given the profile says it applied it, with the profile's figures, and
    # works; its config file's log_flush_interval_ms wins over the profile's window.
    b = broker_factory(config={"log_flush_interval_ms": 7},
                       extra_args=["--tuning-profile", str(profile)])
    log = b.log_path.read_text()
    applied = re.search(r"tuning profile applied.*", log)
    assert applied, log[-3000:]
    line = applied.group(0)
    assert f"write_chunk_bytes={settings['write_chunk_bytes']}" in line, line
    assert f"write_depth={settings['write_depth']}" in line, line
    assert f"io_ring_depth={settings['ring_depth']}" in line, line
    assert "log_flush_interval_ms=7" in line, line
    t = create_topic(b.bootstrap, "tuned", partitions=2)
    produce(b.bootstrap, t, [msg(b"x" * 5000, partition=i % 2) for i in range(200)],
            acks="all")
    assert len(consume(b.bootstrap, [(t, 0, 0), (t, 1, 0)], 200)) == 200


def test_a_broken_profile_stops_the_broker_starting(broker_factory, data_dir):
    bad = data_dir / "tuning.toml"
    bad.write_text("[broker]\nwrite_chunk_bytes = 1000\nwrite_depth = 2\n"
                   "flush_interval_ms = 5\nring_depth = 128\n")
    with pytest.raises(BrokerError, match="write_chunk_bytes"):
        broker_factory(extra_args=["--tuning-profile", str(bad)])


def test_tune_refuses_a_tmpfs_data_dir(corelog_bin):
    # /dev/shm is a tmpfs: O_DIRECT there would measure memory, not a disk.
    shm = Path(tempfile.mkdtemp(prefix="corelog-tune-", dir="/dev/shm"))
    try:
        # With --skip-disk only the checks run, which is fine anywhere.
        out = tune(corelog_bin, shm, "--skip-disk")
        assert out.returncode == 0, out.stderr
        out = tune(corelog_bin, shm)
        assert out.returncode == 1
        assert "tmpfs" in out.stderr + out.stdout
        assert not (shm / "tuning.toml").exists()
    finally:
        shutil.rmtree(shm, ignore_errors=True)
