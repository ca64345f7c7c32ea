"""The admin CLI (`corelog topic|group|produce|consume`) against a running broker, each
result checked through a stock client (confluent-kafka, kafka-python) rather than
through the CLI itself: what the CLI creates, stock clients see, and what stock clients
write, the CLI reads.

Exit codes: 0 done, 1 refused or failed by the cluster, 2 bad usage, 3 unreachable.
"""

import json
import signal
import subprocess
import time

import kafka
from kafka.partitioner.default import murmur2

from helpers import (
    consume,
    create_topic,
    describe_topic_configs,
    msg,
    now_ms,
    partition_count,
    produce,
    resume_abandoned_join,
    topic_names,
    wait_until,
)

CLI_TIMEOUT_S = 60


def cli(corelog_bin, broker, *args, stdin=None, check=None):
    """Runs `corelog ARGS --bootstrap BROKER`; the CompletedProcess (text mode). With
    `check`, asserts that exit code."""
    p = subprocess.run(
        [str(corelog_bin), *args, "--bootstrap", broker.bootstrap],
        input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    if check is not None:
        assert p.returncode == check, (
            f"corelog {' '.join(args)}: exit {p.returncode}, wanted {check}\n"
            f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def cli_json(corelog_bin, broker, *args):
    return json.loads(cli(corelog_bin, broker, *args, "--format", "json", check=0).stdout)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_topic_create_list_describe_delete(corelog_bin, broker, topic_name):
    t = topic_name()
    out = cli(corelog_bin, broker, "topic", "create", t, "-p", "4",
              "-c", "retention.ms=3600000", check=0).stdout
    assert t in out and "OK" in out
    assert partition_count(broker.bootstrap, t) == 4
    assert describe_topic_configs(broker.bootstrap, t)["retention.ms"].value == "3600000"

    # Already there: a failure, unless asked to accept it.
    again = cli(corelog_bin, broker, "topic", "create", t, check=1)
    assert "TOPIC_ALREADY_EXISTS" in again.stdout
    cli(corelog_bin, broker, "topic", "create", t, "--if-not-exists", check=0)

    listed = cli_json(corelog_bin, broker, "topic", "list")
    assert {"name": t, "partitions": 4, "replicas": 1, "internal": False} in listed
    assert t in cli(corelog_bin, broker, "topic", "list", check=0).stdout

    produce(broker.bootstrap, t, [msg(b"a", partition=1), msg(b"b", partition=1),
                                  msg(b"c", partition=3)], acks="all")
    [d] = cli_json(corelog_bin, broker, "topic", "describe", t)
    assert d["name"] == t
    marks = {p["partition"]: (p["log_start_offset"], p["high_watermark"])
             for p in d["partitions"]}
    assert marks == {0: (0, 0), 1: (0, 2), 2: (0, 0), 3: (0, 1)}
    configs = {c["name"]: c for c in d["configs"]}
    assert configs["retention.ms"]["value"] == "3600000"
    assert configs["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["segment.bytes"]["source"] != "DYNAMIC_TOPIC_CONFIG"
    text = cli(corelog_bin, broker, "topic", "describe", t, check=0).stdout
    assert "HIGH-WATERMARK" in text and "retention.ms" in text

    missing = t + "-missing"
    out = cli(corelog_bin, broker, "topic", "delete", t, missing, check=1).stdout
    assert "UNKNOWN_TOPIC_OR_PARTITION" in out
    wait_until(lambda: t not in topic_names(broker.bootstrap), f"{t} to be deleted")
    cli(corelog_bin, broker, "topic", "describe", t, check=1)


def test_add_partitions_and_alter_config(corelog_bin, broker, topic_name):
    t = create_topic(broker.bootstrap, topic_name(), partitions=2,
                     config={"retention.ms": "7200000"})
    cli(corelog_bin, broker, "topic", "add-partitions", t, "-n", "3", check=0)
    wait_until(lambda: partition_count(broker.bootstrap, t) == 5, "5 partitions")

    cli(corelog_bin, broker, "topic", "alter-config", t,
        "--set", "retention.bytes=1048576", "--delete", "retention.ms", check=0)
    configs = describe_topic_configs(broker.bootstrap, t)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000)  # the default again

    bad = cli(corelog_bin, broker, "topic", "alter-config", t, "--set", "no.such.key=1",
              check=1)
    assert "INVALID_CONFIG" in bad.stdout
    assert describe_topic_configs(broker.bootstrap, t)["retention.bytes"].value == "1048576"


def test_what_the_cli_produces_stock_clients_read(corelog_bin, broker, topic_name):
    t = create_topic(broker.bootstrap, topic_name(), partitions=3)
    lines = [f"key-{i}:value-{i}" for i in range(20)] + ["no key here"]
    out = cli(corelog_bin, broker, "produce", t, "-K", ":", "-H", "source=cli",
              "-H", "n=1", "--format", "json", stdin="\n".join(lines) + "\n", check=0)
    acks = json_lines(out.stdout)
    assert len(acks) == 21

    got = consume(broker.bootstrap, [(t, p, 0) for p in range(3)], 21)
    by_value = {r.value: r for r in got}
    for i in range(20):
        r = by_value[f"value-{i}".encode()]
        assert r.key == f"key-{i}".encode()
        assert r.headers == (("source", b"cli"), ("n", b"1"))
        # Keyed records land where Kafka's default (murmur2) partitioner puts them.
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 3
    assert by_value[b"no key here"].key is None
    # Each printed (partition, offset) is where the record is.
    printed = {(a["partition"], a["offset"]) for a in acks}
    assert printed == {(r.partition, r.offset) for r in got}

    # An explicit partition and a fixed key.
    cli(corelog_bin, broker, "produce", t, "-p", "2", "-k", "fixed", "-q",
        stdin="x\ny\n", check=0)
    tail = consume(broker.bootstrap, [(t, 2, by_partition_count(got, 2))], 2)
    assert [(r.key, r.value) for r in tail] == [(b"fixed", b"x"), (b"fixed", b"y")]


def test_a_large_input_is_sent_in_batches_the_broker_accepts(corelog_bin, broker,
                                                              topic_name):
    # 20,000 lines of 200 bytes into one partition: 4 MB, far over max.message.bytes
    # (1 MiB) if sent as one batch.
    t = create_topic(broker.bootstrap, topic_name(), partitions=1)
    lines = "".join(f"{i:08d}{'x' * 192}\n" for i in range(20_000))
    cli(corelog_bin, broker, "produce", t, "-q", stdin=lines, check=0)
    got = cli(corelog_bin, broker, "consume", t, "-e", "-f", "%o %S\\n", check=0).stdout
    rows = [line.split() for line in got.splitlines()]
    assert rows == [[str(i), "200"] for i in range(20_000)]


def by_partition_count(records, partition):
    return sum(1 for r in records if r.partition == partition)


def test_the_cli_reads_what_stock_clients_produce(corelog_bin, broker, topic_name):
    t = create_topic(broker.bootstrap, topic_name(), partitions=2)
    base = now_ms() - 60_000
    messages = [msg(f"v{i}".encode(), key=f"k{i}".encode(), partition=i % 2,
                    headers=[("h", f"{i}".encode())], timestamp=base + i * 1000)
                for i in range(10)]
    produce(broker.bootstrap, t, messages, acks="all", **{"compression.type": "lz4"})

    records = json_lines(cli(corelog_bin, broker, "consume", t, "-e", "--format", "json",
                             check=0).stdout)
    assert len(records) == 10
    for r in records:
        i = int(r["value"][1:])
        assert (r["key"], r["partition"], r["offset"], r["timestamp"]) == \
            (f"k{i}", i % 2, i // 2, base + i * 1000)
        assert r["headers"] == [{"key": "h", "value": str(i)}]

    # A template, one partition, from an offset, a count.
    out = cli(corelog_bin, broker, "consume", t, "-p", "1", "-o", "2", "-n", "2",
              "-f", "%p:%o:%k=%v;", check=0).stdout
    assert out == "1:2:k5=v5;1:3:k7=v7;"
    # The last record of each partition.
    out = cli(corelog_bin, broker, "consume", t, "-o", "-1", "-e", "-f", "%v\\n",
              check=0).stdout
    assert sorted(out.split()) == ["v8", "v9"]
    # An offset past the end waits at the end: nothing to print.
    out = cli(corelog_bin, broker, "consume", t, "-o", "100", "-e", check=0).stdout
    assert out == ""
    # From a time: records at or after base + 7 s.
    out = cli(corelog_bin, broker, "consume", t, "-o", f"@{base + 7000}", "-e",
              "-f", "%v ", check=0).stdout
    assert sorted(out.split()) == ["v7", "v8", "v9"]

    # Batches other clients compressed with gzip and zstd read back the same.
    for codec in ("gzip", "zstd"):
        produce(broker.bootstrap, t, [msg(f"{codec}-{i}".encode(), partition=0)
                                      for i in range(3)],
                acks="all", **{"compression.type": codec})
    out = cli(corelog_bin, broker, "consume", t, "-p", "0", "-o", "5", "-e", "-f", "%v ",
              check=0).stdout
    assert out.split() == ["gzip-0", "gzip-1", "gzip-2", "zstd-0", "zstd-1", "zstd-2"]


def kp_member(bootstrap, group, topic):
    c = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                            client_id="stock-member", enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_wait_ms=100)
    return c


def kp_poll(c):
    """One poll of a kafka-python group member: its records."""
    records = [r for rs in c.poll(timeout_ms=100).values() for r in rs]
    resume_abandoned_join(c, "stock-member")
    return records


def kp_poll_until_assigned(c):
    wait_until(lambda: (kp_poll(c), c.assignment())[1], "an assignment")


def committed(bootstrap, group, topic, partitions):
    c = kafka.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                            enable_auto_commit=False)
    try:
        return {p: c.committed(kafka.TopicPartition(topic, p)) for p in partitions}
    finally:
        c.close()


def test_groups_list_describe_reset_and_delete(corelog_bin, broker, topic_name):
    t = create_topic(broker.bootstrap, topic_name(), partitions=2)
    group = t + "-g"
    produce(broker.bootstrap, t, [msg(f"v{i}".encode(), partition=i % 2,
                                      timestamp=now_ms() - 10_000 + i) for i in range(10)],
            acks="all")
    # A stock member reads some and commits: 3 of partition 0, 5 (all) of partition 1.
    member = kp_member(broker.bootstrap, group, t)
    try:
        kp_poll_until_assigned(member)
        member.commit({kafka.TopicPartition(t, 0): kafka.OffsetAndMetadata(3, None, -1),
                       kafka.TopicPartition(t, 1): kafka.OffsetAndMetadata(5, None, -1)})
        listed = cli_json(corelog_bin, broker, "group", "list")
        mine = [g for g in listed if g["group"] == group]
        assert mine and mine[0]["state"] == "Stable" and mine[0]["members"] == 1
        assert mine[0]["protocol_type"] == "consumer"

        [d] = cli_json(corelog_bin, broker, "group", "describe", group)
        assert d["state"] == "Stable"
        assert [m["client_id"] for m in d["members"]] == ["stock-member"]
        assert d["members"][0]["assignment"] == [{"topic": t, "partitions": [0, 1]}]
        rows = {p["partition"]: p for p in d["partitions"]}
        assert (rows[0]["committed_offset"], rows[0]["log_end_offset"], rows[0]["lag"]) == \
            (3, 5, 2)
        assert (rows[1]["committed_offset"], rows[1]["lag"]) == (5, 0)
        assert rows[0]["client_id"] == "stock-member"
        assert d["total_lag"] == 2

        # Refused while the group has a member, and nothing changes.
        refused = cli(corelog_bin, broker, "group", "reset-offsets", group,
                      "--to-earliest", check=1)
        assert "active member" in refused.stderr
        out = cli(corelog_bin, broker, "group", "delete", group, check=1).stdout
        assert "NON_EMPTY_GROUP" in out
    finally:
        member.close()  # leaves the group
    assert committed(broker.bootstrap, group, t, [0, 1]) == {0: 3, 1: 5}

    # Dry run: printed, not committed.
    plan = cli_json(corelog_bin, broker, "group", "reset-offsets", group, "--to-earliest",
                    "--dry-run")
    assert {(p["partition"], p["previous_offset"], p["new_offset"])
            for p in plan["partitions"]} == {(0, 3, 0), (1, 5, 0)}
    assert committed(broker.bootstrap, group, t, [0, 1]) == {0: 3, 1: 5}

    cli(corelog_bin, broker, "group", "reset-offsets", group, "--to-earliest", check=0)
    assert committed(broker.bootstrap, group, t, [0, 1]) == {0: 0, 1: 0}
    cli(corelog_bin, broker, "group", "reset-offsets", group, "--topic", f"{t}:1",
        "--to-offset", "4", check=0)
    assert committed(broker.bootstrap, group, t, [0, 1]) == {0: 0, 1: 4}
    # An offset past the end is kept at the end, as Kafka's tool does.
    cli(corelog_bin, broker, "group", "reset-offsets", group, "--topic", t,
        "--to-offset", "99", check=0)
    assert committed(broker.bootstrap, group, t, [0, 1]) == {0: 5, 1: 5}
    # The same topic named twice: both selections count.
    cli(corelog_bin, broker, "group", "reset-offsets", group, "--topic", f"{t}:0",
        "--topic", f"{t}:1", "--to-offset", "1", check=0)
    assert committed(broker.bootstrap, group, t, [0, 1]) == {0: 1, 1: 1}
    cli(corelog_bin, broker, "group", "reset-offsets", group, "--to-latest", check=0)
    # By time: record i (partition i % 2, offset i // 2) has timestamp T0 + i. From the
    # time of record 6 (partition 0, offset 3), the first records at or after it are
    # record 6 in partition 0 and record 7 (offset 3) in partition 1.
    [d] = cli_json(corelog_bin, broker, "group", "describe", group)
    assert d["state"] == "Empty" and d["total_lag"] == 0
    ts = json_lines(cli(corelog_bin, broker, "consume", t, "-p", "0", "-o", "3", "-n", "1",
                        "--format", "json", check=0).stdout)[0]["timestamp"]
    cli(corelog_bin, broker, "group", "reset-offsets", group, "--to-timestamp", str(ts),
        check=0)
    assert committed(broker.bootstrap, group, t, [0, 1]) == {0: 3, 1: 3}

    # A new stock member starts where the reset put the group.
    member = kp_member(broker.bootstrap, group, t)
    try:
        got = []
        wait_until(lambda: _drain(member, got) >= 4, "4 records")
        assert sorted((r.partition, r.offset) for r in got) == [(0, 3), (0, 4), (1, 3), (1, 4)]
    finally:
        member.close()

    out = cli(corelog_bin, broker, "group", "delete", group, check=0).stdout
    assert group in out and "OK" in out
    gone = cli(corelog_bin, broker, "group", "describe", group, check=1)
    assert "does not exist" in gone.stderr
    assert group not in [g["group"] for g in cli_json(corelog_bin, broker, "group", "list")]


def test_consume_in_a_group_commits_what_it_printed(corelog_bin, broker, topic_name):
    t = create_topic(broker.bootstrap, topic_name(), partitions=3)
    group = t + "-g"
    produce(broker.bootstrap, t, [msg(f"a{i}".encode(), partition=i % 3) for i in range(9)],
            acks="all")
    out = cli(corelog_bin, broker, "consume", t, "-g", group, "-e", "-f", "%v\\n", check=0)
    assert sorted(out.stdout.split()) == sorted(f"a{i}" for i in range(9))
    assert committed(broker.bootstrap, group, t, [0, 1, 2]) == {0: 3, 1: 3, 2: 3}
    # The member left: the group is empty, not waiting for a session timeout.
    [d] = cli_json(corelog_bin, broker, "group", "describe", group)
    assert d["state"] == "Empty" and d["total_lag"] == 0

    produce(broker.bootstrap, t, [msg(b"b0", partition=1), msg(b"b1", partition=2)],
            acks="all")
    out = cli(corelog_bin, broker, "consume", t, "-g", group, "-e", "-f", "%v\\n", check=0)
    assert sorted(out.stdout.split()) == ["b0", "b1"]
    # -n stops early and commits only what was printed.
    produce(broker.bootstrap, t, [msg(f"c{i}".encode(), partition=0) for i in range(5)],
            acks="all")
    out = cli(corelog_bin, broker, "consume", t, "-g", group, "-n", "2", "-f", "%v\\n",
              check=0)
    assert out.stdout.split() == ["c0", "c1"]
    assert committed(broker.bootstrap, group, t, [0])[0] == 5


def test_interrupted_group_consumer_leaves_its_group(corelog_bin, broker, topic_name):
    t = create_topic(broker.bootstrap, topic_name(), partitions=1)
    group = t + "-g"
    p = subprocess.Popen([str(corelog_bin), "consume", t, "-g", group,
                          "--bootstrap", broker.bootstrap],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def stable():
            out = cli(corelog_bin, broker, "group", "describe", group, "--format", "json")
            if out.returncode != 0:  # not created yet
                return False
            [d] = json.loads(out.stdout)
            return d["state"] == "Stable" and len(d["members"]) == 1
        wait_until(stable, "the CLI member to join")
        interrupted = time.monotonic()
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # It left the group: empty at once, not after the 10 s session timeout.
    [d] = cli_json(corelog_bin, broker, "group", "describe", group)
    assert d["state"] == "Empty", d
    assert time.monotonic() - interrupted < 5


def test_a_stock_member_and_the_cli_share_a_group(corelog_bin, broker, topic_name):
    t = create_topic(broker.bootstrap, topic_name(), partitions=4)
    group = t + "-g"
    cli_member = subprocess.Popen(
        [str(corelog_bin), "consume", t, "-g", group, "-f", "%p:%v\\n",
         "--bootstrap", broker.bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stock = None
    try:
        def members(n):
            out = cli(corelog_bin, broker, "group", "describe", group, "--format", "json")
            if out.returncode != 0:
                return False
            [d] = json.loads(out.stdout)
            return d["state"] == "Stable" and len(d["members"]) == n and d
        wait_until(lambda: members(1), "the CLI member alone")
        stock = kp_member(broker.bootstrap, group, t)
        stock_got = []

        def two_members():
            stock_got.extend(kp_poll(stock))
            return members(2)
        d = wait_until(two_members, "both members")
        owned = {m["client_id"]: sorted(a for x in m["assignment"] for a in x["partitions"])
                 for m in d["members"]}
        assert sorted(owned.values()) == [[0, 1], [2, 3]], owned

        produce(broker.bootstrap, t, [msg(f"v{i}".encode(), partition=i % 4)
                                      for i in range(40)], acks="all")
        wait_until(lambda: _drain(stock, stock_got) >= 20, "the stock member's 20 records")
        time.sleep(1.0)  # the CLI member prints its 20 meanwhile
        cli_member.send_signal(signal.SIGINT)
        out, err = cli_member.communicate(timeout=10)
        assert cli_member.returncode == 0, err
        cli_got = [tuple(line.split(":")) for line in out.split()]
        stock_values = {(str(r.partition), r.value.decode()) for r in stock_got}
        # Every record once, each from the member that owned its partition.
        assert sorted(set(cli_got) | stock_values) == \
            sorted((str(i % 4), f"v{i}") for i in range(40))
        assert len(cli_got) + len(stock_got) == 40
        assert {p for p, _ in cli_got} == {str(p) for p in owned["corelog-bench"]}
    finally:
        if cli_member.poll() is None:
            cli_member.kill()
            cli_member.wait()
        if stock is not None:
            stock.close()


def _drain(consumer, into):
    into.extend(kp_poll(consumer))
    return len(into)


def test_errors_have_exit_codes_and_words(corelog_bin, broker, topic_name):
    # Nothing listens on the port: 3.
    class Closed:
        bootstrap = "127.0.0.1:1"
    out = cli(corelog_bin, Closed, "topic", "list", check=3)
    assert "cannot connect to 127.0.0.1:1" in out.stderr
    # Bad usage: 2, before anything is sent.
    assert "must be positive" in cli(corelog_bin, broker, "topic", "create", "x", "-p", "0",
                                     check=2).stderr
    cli(corelog_bin, broker, "consume", "x", "-o", "soon", check=2)
    cli(corelog_bin, broker, "consume", "x", "-f", "%z", check=2)
    cli(corelog_bin, broker, "group", "reset-offsets", "g", check=2)  # no --to-*
    cli(corelog_bin, broker, "topic", "alter-config", "x", check=2)
    # The cluster says no: 1, with Kafka's error name.
    missing = topic_name()
    out = cli(corelog_bin, broker, "consume", missing, "-e", check=1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in out.stderr
    t = create_topic(broker.bootstrap, topic_name(), partitions=1)
    out = cli(corelog_bin, broker, "consume", t, "-p", "7", "-e", check=1)
    assert "no partition 7" in out.stderr
    # Help with examples for every command.
    for cmd in (["topic"], ["group"], ["produce"], ["consume"]):
        h = subprocess.run([str(corelog_bin), *cmd, "--help"], capture_output=True,
                           text=True, timeout=CLI_TIMEOUT_S)
        assert h.returncode == 0 and "Examples:" in h.stdout, (cmd, h.stdout)
