"""A SIP scanner's traffic, bounded and on loopback only: ``python -m lab.flood --port P --rate R``.

Datagrams of the kinds a scanner or a broken peer sends a phone, at ``--rate`` messages per second
for ``--seconds``, from ``--source`` (any 127.0.0.0/8 address: 127.0.0.1 poses as the PBX, others as a
stranger on the LAN). Kinds (``--kinds``, round-robin, one datagram each):

- ``invite_cancel``: an INVITE for the phone's user with an SDP offer, and at once its CANCEL (the
  burst that aborted pjsua: two datagrams, counted as two messages)
- ``valid``: OPTIONS, MESSAGE, SUBSCRIBE, REGISTER, NOTIFY and an INVITE for someone else
- ``truncated``: a valid INVITE cut off in the middle of its headers or body
- ``oversized``: an INVITE whose body makes the datagram 60 KB
- ``wrong_length``: an INVITE whose Content-Length is larger, smaller or not a number
- ``binary``: random bytes, and bytes that start like SIP
- ``header_flood``: an INVITE with 300 Via headers, and one with a 3 KB header value

Replies are read and counted by status code; the summary is one JSON line on stdout.
``FloodMix`` runs the mix the tests and the bench use: half the rate as every kind from a stranger
(127.0.0.2), a quarter as INVITE+CANCEL from the PBX's own address (127.0.0.1, as a spoofer would) and
a quarter as sipp's INVITE+CANCEL scenario (``lab/sipp/invite_cancel.xml``) from 127.0.0.3.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SIPP_SCENARIO = Path(__file__).resolve().parent / "sipp" / "invite_cancel.xml"
SCANNER, SPOOFED_PBX, SIPP_SOURCE = "127.0.0.2", "127.0.0.1", "127.0.0.3"
KINDS = ("invite_cancel", "valid", "truncated", "oversized", "wrong_length", "binary", "header_flood")

_SDP = (
    "v=0\r\no=scan 1 1 IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\n"
    "m=audio {media} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
)


class Flood:
    """Builds the datagrams; ``n`` makes every request's Call-ID, tag and branch unique."""

    def __init__(self, target: tuple[str, int], source: tuple[str, int], user: str, seed: int = 1) -> None:
        self.host, self.port = target
        self.src, self.src_port = source
        self.user = user
        self.rand = random.Random(seed)
        self.tag = f"{os.getpid()}"
        self.from_user = "scan-" + self.src.replace(".", "-")  # whose ghost call it was, in the events

    def request(
        self, method: str, n: int, *, user: str | None = None, body: str = "", extra: str = "",
        length: str | None = None, cseq_method: str | None = None,
    ) -> bytes:  # fmt: skip
        user = user or self.user
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        head = (
            f"{method} sip:{user}@{self.host}:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.src}:{self.src_port};branch=z9hG4bKscan{self.tag}x{n};rport\r\n"
            f"{extra}"
            "Max-Forwards: 70\r\n"
            f'From: "scanner" <sip:{self.from_user}@{self.src}>;tag=s{self.tag}x{n}\r\n'
            f"To: <sip:{user}@{self.host}>\r\n"
            f"Call-ID: scan-{self.tag}-{n}@{self.src}\r\n"
            f"CSeq: 1 {cseq_method or method}\r\n"
            f"Contact: <sip:{self.from_user}@{self.src}:{self.src_port}>\r\n"
            "User-Agent: friendly-scanner\r\n"
            f"{ctype}"
            f"Content-Length: {length if length is not None else len(body)}\r\n\r\n"
        )
        return (head + body).encode()

    def sdp(self) -> str:
        return _SDP.format(src=self.src, media=self.rand.randrange(10000, 60000, 2))

    def invite_cancel(self, n: int) -> list[bytes]:
        return [self.request("INVITE", n, body=self.sdp()), self.request("CANCEL", n, cseq_method="CANCEL")]

    def valid(self, n: int) -> list[bytes]:
        method, user = [("OPTIONS", None), ("MESSAGE", None), ("SUBSCRIBE", None), ("REGISTER", None),
                        ("NOTIFY", None), ("INVITE", "9999")][n % 6]  # fmt: skip
        return [self.request(method, n, user=user, body=self.sdp() if method == "INVITE" else "")]

    def truncated(self, n: int) -> list[bytes]:
        whole = self.request("INVITE", n, body=self.sdp())
        return [whole[: self.rand.randrange(8, len(whole) - 1)]]

    def oversized(self, n: int) -> list[bytes]:
        padding = "a=x-pad:" + "p" * 60000 + "\r\n"
        return [self.request("INVITE", n, body=self.sdp() + padding)]

    def wrong_length(self, n: int) -> list[bytes]:
        body = self.sdp()
        length = [str(len(body) + 500), str(len(body) // 2), "-1", "abc", "99999999999999999999"][n % 5]
        return [self.request("INVITE", n, body=body, length=length)]

    def binary(self, n: int) -> list[bytes]:
        noise = self.rand.randbytes(self.rand.randrange(1, 1400))
        return [noise if n % 2 else b"INVITE sip:" + noise + b" SIP/2.0\r\n\r\n"]

    def header_flood(self, n: int) -> list[bytes]:
        if n % 2:
            vias = "".join(
                f"Via: SIP/2.0/UDP 10.{i // 250}.{i % 250}.1:5060;branch=z9hG4bKv{n}x{i}\r\n"
                for i in range(300)
            )
            return [self.request("INVITE", n, body=self.sdp(), extra=vias)]
        return [self.request("INVITE", n, body=self.sdp(), extra="Subject: " + "x" * 3000 + "\r\n")]

    def stream(self, kinds: list[str]) -> Iterator[bytes]:
        makers: list[Callable[[int], list[bytes]]] = [getattr(self, kind) for kind in kinds]
        for n in itertools.count():
            yield from makers[n % len(makers)](n)


def run(
    port: int, rate: float, seconds: float, source: str, user: str, kinds: list[str]
) -> dict[str, object]:
    """Send for ``seconds`` at ``rate`` datagrams/s to 127.0.0.1:``port``; count the replies."""
    if not ipaddress.ip_address(source).is_loopback:
        raise SystemExit(f"refusing to flood from {source}: loopback only")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((source, 0))
    sock.setblocking(False)
    flood = Flood(("127.0.0.1", port), sock.getsockname(), user)
    datagrams = flood.stream(kinds)
    replies: Counter[str] = Counter()
    sent = dropped = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while sent + dropped < due:
            try:
                sock.sendto(next(datagrams), ("127.0.0.1", port))
                sent += 1
            except (BlockingIOError, OSError):
                dropped += 1
        _drain(sock, replies)
        time.sleep(min(0.005, max(0.0, start + (sent + dropped + 1) / rate - time.monotonic())))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        _drain(sock, replies)
        time.sleep(0.02)
    sock.close()
    took = time.monotonic() - start
    return {"sent": sent, "not_sent": dropped, "seconds": round(took, 2), "source": source,
            "rate": rate, "kinds": kinds, "replies": dict(sorted(replies.items()))}  # fmt: skip


def _drain(sock: socket.socket, replies: Counter[str]) -> None:
    try:
        while True:
            data = sock.recv(65536)
            first = data.split(b"\r\n", 1)[0].split(b" ")
            is_response = first[0] == b"SIP/2.0" and len(first) > 1
            replies[first[1].decode(errors="replace") if is_response else "?"] += 1
    except BlockingIOError:
        return


class FloodMix:
    """The three floods at once, at ``rate`` datagrams/s in all, for ``seconds``."""

    def __init__(
        self,
        port: int,
        rate: float,
        seconds: float,
        workdir: Path,
        *,
        user: str = "1001",
        spoof_pbx: bool = True,
    ) -> None:
        """Without ``spoof_pbx`` the PBX's quarter comes from the stranger too: a scanner's flood only."""
        self.port, self.rate, self.seconds, self.user = port, rate, seconds, user
        self.spoof_pbx = spoof_pbx
        self.workdir = workdir
        self.procs: list[subprocess.Popen[str]] = []

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._raw(SCANNER, self.rate * 0.5, ",".join(KINDS))
        self._raw(SPOOFED_PBX if self.spoof_pbx else SCANNER, self.rate * 0.25, "invite_cancel")
        sipp = shutil.which("sipp")
        if sipp is None:
            raise RuntimeError("sipp is not installed (apt: sip-tester)")
        calls_per_8s = max(1, round(self.rate * 0.25 / 2 * 8))  # two datagrams a call
        calls = int(calls_per_8s * self.seconds / 8)
        cmd = [sipp, f"127.0.0.1:{self.port}", "-sf", str(SIPP_SCENARIO), "-i", SIPP_SOURCE, "-p", "0",
               "-s", self.user, "-r", str(calls_per_8s), "-rp", "8000", "-m", str(calls), "-nostdin",
               "-timeout", f"{self.seconds + 20:.0f}s"]  # fmt: skip
        with (self.workdir / "sipp.log").open("w") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=self.workdir,
            )
        self.procs.append(proc)

    def _raw(self, source: str, rate: float, kinds: str) -> None:
        cmd = [sys.executable, "-m", "lab.flood", "--port", str(self.port), "--rate", str(rate), "--seconds",
               str(self.seconds), "--source", source, "--user", self.user, "--kinds", kinds]  # fmt: skip
        self.procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                           cwd=Path(__file__).resolve().parents[1]))  # fmt: skip

    def running(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def wait(self) -> list[dict[str, Any]]:
        """Wait for the floods to end; the raw floods' summaries (scanner first)."""
        summaries = []
        for proc in self.procs:
            out, _ = proc.communicate(timeout=self.seconds + 60)
            if out:
                summaries.append(json.loads(out.strip().splitlines()[-1]))
        return summaries

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.flood", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the phone's SIP port on 127.0.0.1")
    parser.add_argument("--rate", type=float, required=True, help="datagrams per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--source", default="127.0.0.2", help="loopback address to send from")
    parser.add_argument("--user", default="1001", help="the phone's SIP user")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        parser.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    print(json.dumps(run(args.port, args.rate, args.seconds, args.source, args.user, kinds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
