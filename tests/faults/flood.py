"""A bounded SIP flood on 127.0.0.1 (a separate process): ``python -m tests.faults.flood PORT COUNT SECONDS``.

Malformed datagrams and valid-but-unwanted requests (OPTIONS, MESSAGE, SUBSCRIBE, INVITE for someone
else, REGISTER), round-robin, evenly spread over at most SECONDS. Only ever sends to 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import sys
import time

MALFORMED = [
    b"\x00\xff" * 300,
    b"INVITE\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
    b"INVITE sip:1001@127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0",
    b"OPTIONS sip:x SIP/7.0\r\nVia: SIP/2.0/UDP ;;;\r\nCall-ID:\r\nCSeq: -1 OPTIONS\r\n\r\n",
    b"A" * 1400,
]


def request(method: str, user: str, port: int, src: int, n: int) -> bytes:
    body = b""
    if method == "INVITE":
        body = (
            b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
            b"t=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
        )
    head = (
        f"{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{src};branch=z9hG4bKflood{os.getpid()}x{n};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:flood@127.0.0.1>;tag=f{n}\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: flood-{os.getpid()}-{n}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:flood@127.0.0.1:{src}>\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def main() -> int:
    port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    src = sock.getsockname()[1]
    methods = [("OPTIONS", "1001"), ("MESSAGE", "1001"), ("SUBSCRIBE", "1001"), ("INVITE", "9999"),
               ("REGISTER", "1001"), ("NOTIFY", "1001")]  # fmt: skip
    start = time.monotonic()
    sent = 0
    for n in range(count):
        if time.monotonic() - start > seconds:
            break
        if n % 2:
            data = MALFORMED[n // 2 % len(MALFORMED)]
        else:
            method, user = methods[n // 2 % len(methods)]
            data = request(method, user, port, src, n)
        try:
            sock.sendto(data, ("127.0.0.1", port))
            sent += 1
        except BlockingIOError:
            pass
        try:  # drain replies so our own buffer never fills
            while sock.recv(65536):
                pass
        except BlockingIOError:
            pass
        time.sleep(max(0.0, start + (n + 1) * seconds / count - time.monotonic()))
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
