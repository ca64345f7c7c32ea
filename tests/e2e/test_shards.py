"""A broker with two shards: every partition, whichever shard owns it, is reachable for
produce and fetch through any connection, and one Fetch can span all of them."""

import pytest

import kwire
from helpers import (
    assert_contiguous,
    by_partition,
    consume_both,
    create_topic,
    kp_watermarks,
    msg,
    produce,
)

PARTITIONS = 8
PER_PARTITION = 20


@pytest.fixture(scope="module")
def two_shards(module_broker_factory):
    return module_broker_factory(shards=2)


def test_clients_produce_and_fetch_every_partition(two_shards, topic_name):
    b = two_shards
    topic = create_topic(b.bootstrap, topic_name(), partitions=PARTITIONS)
    # One producer (one connection) writes every partition.
    sent = [msg(f"p{p}-{i}".encode(), key=f"k{i}".encode(), partition=p)
            for i in range(PER_PARTITION) for p in range(PARTITIONS)]
    delivered = produce(b.bootstrap, topic, sent)
    assert sorted((d.partition, d.offset) for d in delivered) == \
        [(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)]

    # One consumer assigned all partitions: multi-partition fetches.
    records = consume_both(b.bootstrap, [(topic, p, 0) for p in range(PARTITIONS)],
                           PARTITIONS * PER_PARTITION)
    parts = by_partition(records)
    assert sorted(parts) == list(range(PARTITIONS))
    for p, recs in parts.items():
        assert_contiguous(recs)
        assert [r.value for r in recs] == [f"p{p}-{i}".encode() for i in range(PER_PARTITION)]
    low, high = kp_watermarks(b.bootstrap, topic, range(PARTITIONS))
    assert low == {p: 0 for p in range(PARTITIONS)}
    assert high == {p: PER_PARTITION for p in range(PARTITIONS)}


def test_one_request_spans_all_partitions(two_shards, topic_name):
    """Raw Produce and Fetch requests that each name every partition, sent on several
    connections (which the broker may hand to either shard)."""
    b = two_shards
    topic = create_topic(b.bootstrap, topic_name(), partitions=PARTITIONS)
    rounds = 4
    for round_no in range(rounds):
        with kwire.Connection.to(b.bootstrap) as conn:
            batches = {(topic, p): kwire.encode_batch(
                [(None, f"r{round_no}-p{p}-{i}".encode()) for i in range(3)])
                for p in range(PARTITIONS)}
            acks = conn.produce(batches, acks=-1)
            assert {tp: (r.error_code, r.base_offset) for tp, r in acks.items()} == \
                {tp: (kwire.NONE, 3 * round_no) for tp in batches}

            fetched = conn.fetch({(topic, p): 0 for p in range(PARTITIONS)})
            assert sorted(fetched) == sorted(batches)
            for (_, p), result in fetched.items():
                assert result.error_code == kwire.NONE
                assert result.high_watermark == 3 * (round_no + 1)
                assert all(batch.crc_ok for batch in result.batches)
                got = [r.value for batch in result.batches for r in batch.records]
                assert got == [f"r{n}-p{p}-{i}".encode()
                               for n in range(round_no + 1) for i in range(3)]


def test_a_connection_moves_to_the_shard_of_its_partitions(broker_factory, topic_name,
                                                           monkeypatch):
    """Partitions 0 and 1 of a topic live on different shards, so runs of one-record
    produces to p0, p1, p0 on one connection move it at least twice (whichever shard
    it lands on). Three requests are kept in flight with acks=all, so a move happens
    with responses outstanding; every answer must still arrive, in order, with the
    right offsets, and the data must read back through the moved connection."""
    monkeypatch.setenv("CORELOG_LOG", "info,corelog::broker::connection=debug")
    b = broker_factory(shards=2, config={"busy_poll_us": 50})
    topic = create_topic(b.bootstrap, topic_name(), partitions=2)
    runs, per_run, depth = (0, 1, 0), 40, 3
    sent = {0: [], 1: []}
    with kwire.Connection.to(b.bootstrap) as conn:
        version = conn.pick_version(kwire.API_PRODUCE, 3, 8)
        expected = []
        for run_no, p in enumerate(runs):
            for i in range(per_run):
                value = f"run{run_no}-p{p}-{i}".encode()
                body = kwire.produce_body({(topic, p): kwire.encode_batch([(None, value)])},
                                          acks=-1)
                expected.append((conn.send(kwire.API_PRODUCE, version, body), p,
                                 len(sent[p])))
                sent[p].append(value)
                while len(expected) > depth or (expected and i == per_run - 1):
                    ticket, tp, offset = expected.pop(0)
                    result = kwire.decode_produce_response(conn.receive(ticket),
                                                           version)[(topic, tp)]
                    assert (result.error_code, result.base_offset) == (kwire.NONE, offset)
        fetched = conn.fetch({(topic, p): 0 for p in (0, 1)})
    for p in (0, 1):
        result = fetched[(topic, p)]
        assert result.error_code == kwire.NONE
        assert [r.value for batch in result.batches for r in batch.records] == sent[p]
    moves = b.log_path.read_text(errors="replace").count("connection moved")
    assert moves >= 2, b.log_tail()
