"""The broker's one-record produce latency as a minimal blocking client sees it.

Usage: produce_ping.py HOST:PORT TOPIC [REQUESTS] [JSON_OUT]

Sends Produce v3 requests (acks=1) holding one 100-byte record, one at a time, over a
plain blocking socket with TCP_NODELAY, and prints the request-to-response percentiles.
The topic must exist with partition 0. It is the baseline beside the suite's "one record
per request" row: the same broker without any client executor in the way.
"""
import json
import socket
import struct
import sys
import time

def crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t
T = crc32c_table()
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

def varint(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        if n < 0x80:
            return out + bytes([n])
        out += bytes([(n & 0x7F) | 0x80]); n >>= 7

value = b"x" * 100
rec_body = bytes([0]) + varint(0) + varint(0) + varint(-1) + varint(len(value)) + value + varint(0)
record = varint(len(rec_body)) + rec_body
ts = int(time.time() * 1000)
after_crc = struct.pack(">hiqqqhii", 0, 0, ts, ts, -1, -1, -1, 1) + record
batch_wo_len = struct.pack(">ib", 0, 2) + struct.pack(">I", crc32c(after_crc)) + after_crc
batch = struct.pack(">q", 0) + struct.pack(">i", len(batch_wo_len)) + batch_wo_len

topic = sys.argv[2].encode()
def request(corr):
    body = struct.pack(">hhih", 0, 3, corr, 4) + b"ping" + struct.pack(">hhi", -1, 1, 30000)
    body += struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic
    body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(batch)) + batch
    return struct.pack(">i", len(body)) + body

host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def recv_exact(n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise SystemExit("closed")
        buf += d
    return buf
lat = []
n = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
for i in range(n):
    req = request(i)
    t = time.perf_counter_ns()
    s.sendall(req)
    size = struct.unpack(">i", recv_exact(4))[0]
    resp = recv_exact(size)
    lat.append(time.perf_counter_ns() - t)
    if i == 0:
        # correlation id, topic count, topic name, partition count, partition index
        at = 4 + 4 + 2 + len(topic) + 4 + 4
        err = struct.unpack(">h", resp[at:at + 2])[0]
        if err != 0:
            raise SystemExit(f"produce failed with error code {err}")
lat.sort()
p50, p90, p99 = (lat[int(len(lat) * q)] / 1000 for q in (0.5, 0.9, 0.99))
print(f"p50 {p50:.0f} us  p90 {p90:.0f} us  p99 {p99:.0f} us")
if len(sys.argv) > 4:
    json.dump({"p50_us": p50, "p90_us": p90, "p99_us": p99, "requests": n}, open(sys.argv[4], "w"))
