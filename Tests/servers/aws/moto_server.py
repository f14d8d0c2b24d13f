#!/usr/bin/env python3
"""Runs moto's own server application (the same app as `python3 -m moto.server`) on 127.0.0.1 for the
aws-kms backend tests, on a port the OS picks (no race for a "free" port).

Prints `READY <port>` on stdout once it accepts connections. Exits on SIGTERM/SIGINT, when its parent process
goes away (so a crashed test run leaves nothing behind), or after --max-lifetime seconds.

    python3 Tests/servers/aws/moto_server.py [--port 0] [--max-lifetime 1800]
"""
import argparse
import os
import signal
import sys
import threading
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-lifetime", type=float, default=1800.0)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    parent = os.getppid()
    print(f"READY {port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + args.max_lifetime
    while not stop.wait(0.5):
        if os.getppid() != parent or time.monotonic() > deadline:
            break
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
