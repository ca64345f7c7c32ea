#!/usr/bin/env python3
"""The broker's one-record produce latency as a minimal blocking client sees it.

Usage: produce_ping.py HOST:PORT TOPIC [REQUESTS] [JSON_OUT]

Sends Produce v3 requests (acks=1) holding one 100-byte record, one at a time, over a
plain blocking socket with TCP_NODELAY (tests/e2e/kwire.py's Connection), and prints the
request-to-response percentiles. The topic must exist with partition 0. It is the
baseline beside the suite's "one record per request" row: the same broker without any
client executor in the way.
"""
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import kwire  # noqa: E402

bootstrap, topic = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
body = kwire.produce_body({(topic, 0): kwire.encode_batch([(None, b"x" * 100)])}, acks=1)
lat = []
with kwire.Connection.to(bootstrap) as conn:
    for i in range(n):
        t = time.perf_counter_ns()
        response = conn.request(kwire.API_PRODUCE, 3, body)
        lat.append(time.perf_counter_ns() - t)
        if i == 0:
            result = kwire.decode_produce_response(response, 3)[(topic, 0)]
            if result.error_code != 0:
                raise SystemExit(f"produce failed with error code {result.error_code}")
lat.sort()
p50, p90, p99 = (lat[int(len(lat) * q)] / 1000 for q in (0.5, 0.9, 0.99))
print(f"p50 {p50:.0f} us  p90 {p90:.0f} us  p99 {p99:.0f} us")
if len(sys.argv) > 4:
    with open(sys.argv[4], "w") as f:
        json.dump({"p50_us": p50, "p90_us": p90, "p99_us": p99, "requests": n}, f)
