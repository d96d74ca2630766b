#!/usr/bin/env python3
"""Peer baselines for `cdrbox-bench peers`: panoramisk (PyPI), the most used Python AMI library.

Must not be imported by tests; it is run by the bench binary as a child process and prints one
JSON line. Needs `pip install panoramisk` (see BENCHMARKS.md).

  decode CAPTURE BYTES   feed the capture (banner stripped, repeated to BYTES) in 64 KiB chunks
                         through panoramisk's own AMIProtocol.data_received; count Cdr events.
  logger HOST PORT N DB  the logger users write today: panoramisk Manager + Python sqlite3, one
                         INSERT and one commit per Cdr event; exit after N rows are committed.
"""
import asyncio
import json
import sqlite3
import sys
import time


def decode(capture, target):
    from panoramisk.ami_protocol import AMIProtocol

    raw = open(capture, "rb").read()
    body = raw[raw.index(b"\n") + 1:]
    data = bytearray(b"Asterisk Call Manager/11.0.0\r\n")
    while len(data) < target:
        data += body
    data = bytes(data)

    class Factory:
        def __init__(self):
            self.events = 0
            self.cdrs = 0

        def dispatch(self, message):
            self.events += 1
            if message.get("Event") == "Cdr":
                self.cdrs += 1

    class Transport:
        def write(self, _):
            pass

    best = None
    out = None
    for _ in range(3):
        proto = AMIProtocol()
        proto.connection_made(Transport())
        proto.factory = Factory()
        proto.encoding = "utf8"
        chunk = 64 * 1024
        t = time.perf_counter()
        for i in range(0, len(data), chunk):
            proto.data_received(data[i:i + chunk])
        dt = time.perf_counter() - t
        if best is None or dt < best:
            best = dt
            out = proto.factory
    print(json.dumps({"seconds": best, "bytes": len(data), "events": out.events, "cdrs": out.cdrs}))


def logger(host, port, n, db):
    from panoramisk import Manager

    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS cdr(id INTEGER PRIMARY KEY, uniqueid TEXT, start TEXT, "
        "src TEXT, dst TEXT, disposition TEXT, duration INTEGER, raw TEXT)")
    conn.commit()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    done = loop.create_future()
    state = {"rows": 0, "t0": time.perf_counter()}
    manager = Manager(loop=loop, host=host, port=port, username="bench", secret="bench",
                      ping_delay=3600, ping_interval=3600, reconnect_timeout=1)

    def on_cdr(_manager, m):
        conn.execute(
            "INSERT INTO cdr(uniqueid,start,src,dst,disposition,duration,raw) VALUES (?,?,?,?,?,?,?)",
            (m.get("UniqueID"), m.get("StartTime"), m.get("Source"), m.get("Destination"),
             m.get("Disposition"), int(m.get("Duration") or 0), json.dumps(dict(m))))
        conn.commit()
        state["rows"] += 1
        if state["rows"] >= n and not done.done():
            done.set_result(time.perf_counter() - state["t0"])

    manager.register_event("Cdr", on_cdr)
    state["t0"] = time.perf_counter()
    manager.connect()
    seconds = loop.run_until_complete(asyncio.wait_for(done, 600))
    manager.close()
    print(json.dumps({"seconds": seconds, "rows": state["rows"]}))


if __name__ == "__main__":
    if sys.argv[1] == "decode":
        decode(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "logger":
        logger(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("usage: panoramisk_bench.py decode CAPTURE BYTES | logger HOST PORT N DB")
