"""A process holding N websocket subscribers on raw sockets. For each push it prints the time
(time.time()) at which the last of its subscribers received bytes of it:
`python -m bench.fanout_client HOST PORT N ROUNDS`.

Raw sockets, not aiohttp: a client library spends ~30 us of CPU per message on the same cores
as the server, and the figure is about the server's fan-out, not about the clients' parsing.
Each push is one small frame, so the arrival of any bytes marks the arrival of the message.
"""

import base64
import json
import os
import selectors
import socket
import sys
import time


def connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /simulator-subscribe HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, rest = received.partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    if not rest:
        sock.recv(4096)  # the snapshot frame
    sock.setblocking(False)
    return sock


def main(host: str, port: int, count: int, rounds: int) -> None:
    sockets = [connect(host, port) for _ in range(count)]
    selector = selectors.EpollSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    print("ready", flush=True)
    for round_no in range(rounds):
        waiting = set(sockets)
        last = 0.0
        while waiting:
            for key, _ in selector.select(timeout=10):
                sock = key.fileobj
                try:
                    while sock.recv(65536):  # type: ignore[union-attr]
                        pass
                except BlockingIOError:
                    pass
                if sock in waiting:
                    waiting.discard(sock)  # type: ignore[arg-type]
                    last = time.time()
        print(json.dumps({"round": round_no, "last": last}), flush=True)
    for sock in sockets:
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
