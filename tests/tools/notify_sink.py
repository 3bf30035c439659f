#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""A stand-in for systemd's notification socket (sd_notify(3)): binds an
AF_UNIX datagram socket at PATH and prints each message received as one
line, with newlines shown as "|", flushed at once.

Usage: notify_sink.py PATH"""

import os
import socket
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    print("bound", flush=True)
    while True:
        msg = s.recv(4096)
        print(msg.decode("utf-8", "replace").replace("\n", "|"), flush=True)


if __name__ == "__main__":
    main()
