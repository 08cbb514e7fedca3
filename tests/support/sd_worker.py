"""A program written for systemd, run by the e2e tests under the controller.

``sd_worker.py serve``: an HTTP worker on the socket it is passed (socket activation:
LISTEN_FDS, fd 3, LISTEN_PID checked against its own pid, as sd_listen_fds does). It says
READY=1 over NOTIFY_SOCKET once it accepts, after READY_DELAY seconds (default 0.3), and on
SIGTERM stops accepting, finishes the request in hand and exits 0, so that a rolling restart
loses no connection. Each answer is "<VERSION> <pid>".

``sd_worker.py ready-after SECONDS MARKER``: waits, creates the file MARKER, then says
READY=1 and STATUS=, and sleeps until signalled.

Standard library only; no systemd library, so the protocol is spelled out here.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time


def notify(message: str) -> None:
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def listening_socket() -> socket.socket:
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit(f"LISTEN_PID {os.environ.get('LISTEN_PID')} is not my pid {os.getpid()}")
    if (os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_FDNAMES")) != ("1", "http"):
        sys.exit("expected one socket named http")
    return socket.socket(fileno=3)


def serve() -> None:
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    sock = listening_socket()
    sock.settimeout(0.2)  # wake up now and then to see whether to stop
    body = f"{os.environ.get('VERSION', '1')} {os.getpid()}".encode()
    time.sleep(float(os.environ.get("READY_DELAY", "0.3")))
    notify("READY=1\nSTATUS=serving")
    while not stopping:
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % len(body) + body)


def ready_after(seconds: float, marker: str) -> None:
    time.sleep(seconds)
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    notify("READY=1\nSTATUS=warmed up")
    signal.pause()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        ready_after(float(sys.argv[2]), sys.argv[3])
