#!/usr/bin/env python3
"""image/ami-watch.py — an independent AMI client for the end-to-end tests: logs in to a
(simulated) Asterisk, writes one line "LinkedID<TAB>UniqueID<TAB>Sequence" per `Event: Cdr` it
receives, and exits once it has seen CALLS distinct calls (LinkedIDs) and a quiet second.

It is the oracle: the logger's export must hold exactly the CDRs this client saw. Plain login
(the simulated PBX accepts it on loopback); stdlib only, so it runs on any CI host.

usage: ami-watch.py HOST PORT USER SECRET CALLS OUTFILE [TIMEOUT_S]
"""
import socket
import sys
import time


def main() -> int:
    host, port, user, secret, calls, out = sys.argv[1:7]
    timeout = float(sys.argv[7]) if len(sys.argv) > 7 else 300.0
    calls = int(calls)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        f"Action: Login\r\nActionID: w1\r\nUsername: {user}\r\nSecret: {secret}\r\n"
        "Events: cdr\r\n\r\n".encode()
    )
    buf = b""
    linked = set()
    deadline = time.monotonic() + timeout
    quiet_since = None
    with open(out, "w", encoding="utf-8") as f:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    print("ami-watch: the PBX closed the connection", file=sys.stderr)
                    return 1
                buf += chunk
            except socket.timeout:
                if len(linked) >= calls:
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since >= 1.0:
                        return 0
                continue
            quiet_since = None
            while b"\r\n\r\n" in buf:
                msg, buf = buf.split(b"\r\n\r\n", 1)
                headers = {}
                for line in msg.decode("utf-8", "replace").split("\r\n"):
                    k, sep, v = line.partition(": ")
                    if sep:
                        headers.setdefault(k.lower(), v)
                if headers.get("response") == "Success" and headers.get("actionid") == "w1":
                    print("ami-watch: logged in", flush=True)
                elif headers.get("response") == "Error":
                    print(f"ami-watch: login refused: {headers}", file=sys.stderr)
                    return 1
                elif headers.get("event") == "Cdr":
                    lid = headers.get("linkedid", headers.get("uniqueid", ""))
                    linked.add(lid)
                    f.write(f"{lid}\t{headers.get('uniqueid', '')}\t{headers.get('sequence', '')}\n")
                    f.flush()
    print(f"ami-watch: timed out after {timeout} s with {len(linked)} of {calls} calls", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
