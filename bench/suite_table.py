"""Rewrites the standard-suite table of BENCHMARKS.md from bench/suite.sh's JSON results.

Usage: python3 bench/suite_table.py OUT_DIR BENCHMARKS.md
Each row: the figure, the baseline measured in the same run, the target and whether it
was met. The table sits between the '<!-- suite:begin -->' and '<!-- suite:end -->' lines.
"""
import datetime
import json
import os
import sys

out, md = sys.argv[1], sys.argv[2]


def load(name):
    p = os.path.join(out, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None


def raw_phases(d):
    b, a = d.get("raw_mb_s_before_after") or (d["raw_mb_s"], d["raw_mb_s"])
    return f"{b:.0f} just before and {a:.0f} right after"


def lat(p):
    return f"p50 {p['p50_us']} / p99 {p['p99_us']} / p99.9 {p['p999_us']} us"


def ok(cond):
    return "met" if cond else "**missed**"


rows = []
d = load("durable")
if d:
    rows.append(("Durable produce, 4 producers, acks=all, 1 MiB batches",
                 f"{d['produce']['batch_mb_s']:.0f} MB/s ({d['records_s']:.0f} rec/s); ack {lat(d['produce']['latency'])}",
                 f"raw O_DIRECT {d['raw_mb_s']:.0f} MB/s (mean of {raw_phases(d)}; 4 MiB per fdatasync per file); ratio {d['ratio_to_raw']:.2f}",
                 ">= 0.75 of raw", ok(d["ratio_to_raw"] >= 0.75)))
s = load("small")
if s:
    rows.append(("100 B records, acks=1, 64 KiB batches, 2 producers",
                 f"{s['records_s'] / 1e6:.2f}M rec/s ({s['mb_s']:.0f} MB/s payload)", "-", ">= 5M rec/s", ok(s["records_s"] >= 5e6)))
r = load("rate200")
e = load("engine_latency")
if r:
    base = f"engine alone, append to durable: {lat(e['latency'])}" if e else "-"
    rows.append(("Fixed 200 MB/s, acks=all, 4 producers",
                 f"{r['produce']['mb_s']:.0f} MB/s; produce {lat(r['produce']['latency'])}; end to end {lat(r['e2e_latency'])}",
                 base, "produce p99 < 500 us, e2e p99 < 1000 us",
                 ok(r["produce"]["latency"]["p99_us"] < 500 and r["e2e_latency"]["p99_us"] < 1000)))
g, gp = load("single"), load("single_poll")
pp = load("pingpong")


def pingpong(mode):
    m = pp and pp.get(mode)
    return (f"TCP round trip of the same sizes between two threads, {mode.replace('_', '-')}:"
            f" p50 {m['p50_us']:.0f} / p99 {m['p99_us']:.0f} us") if m else "-"


if g:
    base = pingpong("blocking")
    raw = load("produce_ping")
    if raw:
        base += (f"; the same one-record produce from a blocking raw-socket client (`bench/produce_ping.py`):"
                 f" p50 {raw['p50_us']:.0f} / p99 {raw['p99_us']:.0f} us")
    rows.append(("One record per request, acks=1, default settings", f"{g['produce']['requests_s']:.0f} requests/s; {lat(g['produce']['latency'])}",
                 base, "p50 < 25 us", ok(g["produce"]["latency"]["p50_us"] < 25)))
if gp:
    rows.append(("One record per request, acks=1, busy polling (broker `busy_poll_us = 100`, client `--busy-poll-us 100`)",
                 f"{gp['produce']['requests_s']:.0f} requests/s; {lat(gp['produce']['latency'])}",
                 pingpong("busy_poll"), "p50 < 25 us", ok(gp["produce"]["latency"]["p50_us"] < 25)))
w, c = load("catchup_warm"), load("catchup_cold")
if w:
    rows.append(("Catch-up read of 4 GiB, 4 consumers, same broker process", f"{w['mb_s']:.0f} MB/s ({w['records_s']:.0f} rec/s)", "-", "-", "-"))
if c:
    rows.append(("Catch-up read of 4 GiB, 4 consumers, after a restart (cold)", f"{c['mb_s']:.0f} MB/s ({c['records_s']:.0f} rec/s)",
                 f"warm read {w['mb_s']:.0f} MB/s" if w else "-", "-", "-"))
fb, f = load("fanout_base"), load("fanout")
def loopback_note(fb):
    lb = load("loopback")
    if not lb:
        return ""
    need = 33 * fb["produce"]["batch_mb_s"] / 1000
    return (f". Local TCP alone (`bench loopback`, two threads doing nothing else) moves {lb['gb_s']:.2f} GB/s;"
            f" 32 groups plus the producers need {need:.2f} GB/s through it")


if fb and f:
    ratio = f["produce"]["mb_s"] / fb["produce"]["mb_s"]
    per_group = f["consume"]["mb_s"] / 32
    rows.append(("Fan-out: 32 groups tailing, producing 100 MB/s",
                 f"produce {f['produce']['mb_s']:.0f} MB/s; each group reads {per_group:.0f} MB/s; e2e {lat(f['e2e_latency'])}",
                 f"without groups {fb['produce']['mb_s']:.0f} MB/s; ratio {ratio:.2f}" + loopback_note(fb), ">= 0.9", ok(ratio >= 0.9 and per_group >= 0.9 * fb['produce']['batch_mb_s'])))
rs = load("restart")
if rs:
    rows.append(("Restart holding 10 GiB in 100 partitions",
                 f"serving after {rs['serving_ms']:.0f} ms (all partitions led after {rs['metadata_ms']:.0f} ms); first 1 GiB read at {rs['first_mb_s']:.0f} MB/s",
                 f"the rest of the same read: {rs['rest_mb_s']:.0f} MB/s", "serving < 1 s; first fetches at full speed",
                 ok(rs["metadata_ms"] < 1000 and rs["first_mb_s"] >= 0.9 * rs["rest_mb_s"])))
k, cc = load("kcat"), load("client_compare")
if k and cc:
    rows.append(("Client check: 2M x 100 B, acks=1, 64 KiB batches, 1 producer",
                 f"corelog bench: {cc['records_s'] / 1e6:.2f}M rec/s, {cc['client_cpu_s']:.2f} CPU-s (client share {100 * (cc['client_cpu_share'] or 0):.0f}%)",
                 f"kcat (librdkafka 2.0.2): {k['records_s'] / 1e6:.2f}M rec/s, {k['client_cpu_s']:.2f} CPU-s",
                 "the client is not the bottleneck: less CPU per record than librdkafka",
                 ok(cc["client_cpu_s"] / (cc["records_s"] * cc["seconds"]) <= k["client_cpu_s"] / 2e6)))

when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
table = [f"Last refreshed {when} by `bench/suite.sh` (JSON in `{out}`).", "",
         "| Row | Result | Baseline in the same run | Target | |", "|---|---|---|---|---|"]
table += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
text = open(md).read()
begin, end = "<!-- suite:begin -->", "<!-- suite:end -->"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + begin + "\n" + "\n".join(table) + "\n" + end + tail
else:
    text += "\n" + begin + "\n" + "\n".join(table) + "\n" + end + "\n"
open(md, "w").write(text)
print("\n".join(table))
