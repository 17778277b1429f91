"""The bench lab: one kamailio, one mosquitto, one baresip far end, our phone and baresip-as-the-phone.

Everything on 127.0.0.1. The far end (extension 1002, manual answer) is driven over ctrl_tcp and
time-stamps every event it reports as it arrives. Our phone is extension 1001 (``deskphone run`` on the
sim board); baresip-as-the-phone is extension 1003 with its ``mqtt`` module on the same broker.
A ``Crm`` subscriber time-stamps every MQTT message on both systems' topics.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from lab.servers.baresip import Baresip
from lab.servers.kamailio import Kamailio
from lab.servers.mosquitto import Mosquitto
from lab.servers.phone import PHONE_PASSWORD, PhoneProcess, phone_config_text
from lab.servers.ports import LOOPBACK, free_port

RATE = 16000
FAR_USER = "1002"
OURS_USER = "1001"
BS_USER = "1003"
BS_BASETOPIC = "bsphone"
MARK_PERIOD_S = 2.0
MIC_MARK_OFFSET_S = 0.5
MARK_LEN_S = 0.04


class TimedBaresip(Baresip):
    """A ``Baresip`` whose ctrl_tcp events carry their arrival time (``_t``, monotonic)."""

    def _dispatch(self, msg: dict[str, Any]) -> None:
        msg["_t"] = time.monotonic()
        super()._dispatch(msg)

    def clear_events(self) -> None:
        with self._cond:
            self.events.clear()
            self._consumed = 0

    def send_command(self, command: str, params: str = "") -> float:
        """Send a command without waiting for its response; the monotonic time it left."""
        assert self._sock is not None
        with self._cond:
            self._token += 1
            token = f"n{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        t = time.monotonic()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        return t

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid


def bs_mqtt_config(broker_port: int, basetopic: str = BS_BASETOPIC) -> str:
    """baresip's mqtt module: publishes on ``/<basetopic>/event``, takes ``/<basetopic>/command/<tok>``."""
    return (
        "module_app\t\tmqtt.so\n"
        f"mqtt_broker_host\t{LOOPBACK}\n"
        f"mqtt_broker_port\t{broker_port}\n"
        f"mqtt_broker_clientid\t{basetopic}\n"
        f"mqtt_basetopic\t\t{basetopic}\n"
    )


@dataclass
class Message:
    t: float
    topic: str
    payload: dict[str, Any]


@dataclass
class Crm:
    """An MQTT subscriber that time-stamps what it receives (monotonic, in paho's network thread)."""

    port: int
    topics: list[str]
    messages: list[Message] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _client: mqtt.Client | None = None

    def start(self) -> None:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-crm-{os.getpid()}")
        subscribed = threading.Event()

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            for topic in self.topics:
                c.subscribe(topic, qos=1)
            subscribed.set()

        def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            t = time.monotonic()
            try:
                payload = json.loads(msg.payload) if msg.payload else {}
            except ValueError:
                payload = {"raw": msg.payload.decode(errors="replace")}
            if not isinstance(payload, dict):
                payload = {"raw": payload}
            with self._cond:
                self.messages.append(Message(t, msg.topic, payload))
                self._cond.notify_all()

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect(LOOPBACK, self.port)
        client.loop_start()
        self._client = client
        if not subscribed.wait(10):
            raise RuntimeError("CRM subscriber could not connect")
        time.sleep(0.2)

    def publish(self, topic: str, payload: dict[str, Any]) -> float:
        assert self._client is not None
        data = json.dumps(payload)
        t = time.monotonic()
        self._client.publish(topic, data, qos=1)
        return t

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def wait(self, predicate: Callable[[Message], bool], since: int = 0, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[since:]:
                    if predicate(m):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("CRM: expected message did not arrive")
                self._cond.wait(remaining)

    def find(self, predicate: Callable[[Message], bool], since: int = 0) -> list[Message]:
        with self._cond:
            return [m for m in self.messages[since:] if predicate(m)]

    def stop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()


def write_marked_wav(path: Path, seconds: float, freq: float = 1000.0, offset_s: float = 0.5) -> Path:
    """Silence with a ``MARK_LEN_S`` burst of ``freq`` every ``MARK_PERIOD_S`` from ``offset_s``."""
    n = int(seconds * RATE)
    samples = np.zeros(n, dtype=np.float64)
    burst = np.sin(2 * np.pi * freq * np.arange(int(MARK_LEN_S * RATE)) / RATE) * 0.5 * 32767
    start = offset_s
    while start + MARK_LEN_S < seconds:
        i = int(start * RATE)
        samples[i : i + len(burst)] = burst
        start += MARK_PERIOD_S
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def mark_onsets(samples: np.ndarray, threshold: float = 2000.0, min_gap: int = RATE // 2) -> list[int]:
    """Sample indexes where a burst starts (first sample over ``threshold`` after ``min_gap`` quiet)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    onsets: list[int] = []
    for i in loud:
        if not onsets or i - onsets[-1] > min_gap:
            onsets.append(int(i))
    return onsets


class Lab:
    """Start and stop the servers and both phones; ``ours``/``bs`` may be restarted by measurements."""

    def __init__(self, workdir: Path, mic_seconds: float = 700.0) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kam = Kamailio(self.dir / "kamailio")
        self.broker = Mosquitto(self.dir / "mosquitto")
        self.mic_wav = write_marked_wav(self.dir / "mic-marks.wav", mic_seconds, 1000.0, MIC_MARK_OFFSET_S)
        self.far_wav = write_marked_wav(self.dir / "far-marks.wav", mic_seconds, 600.0, 1.0)
        self.far: TimedBaresip | None = None
        self.ours: PhoneProcess | None = None
        self.bs: TimedBaresip | None = None
        self.crm: Crm | None = None
        self.device_id = "desk-bench"
        self._starts = 0
        self._users_lock = threading.Lock()

    @property
    def registrar(self) -> str:
        return f"{self.kam.host}:{self.kam.port}"

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.registrar}"

    @property
    def ours_topic(self) -> str:
        return f"deskphone/{self.device_id}"

    def start(self) -> None:
        self.kam.start()
        self.broker.start()
        self.crm = Crm(self.broker.port, ["deskphone/#", f"/{BS_BASETOPIC}/#"])
        self.crm.start()
        self.kam.add_user(FAR_USER, "pw")
        self.kam.add_user(OURS_USER, PHONE_PASSWORD)
        self.kam.add_user(BS_USER, "pw3")
        self.far = TimedBaresip(
            self.dir / "far",
            user=FAR_USER,
            password="pw",
            registrar=self.registrar,
            auto_answer=False,
            source_wav=self.far_wav,
            idle_player=True,
        )
        self.far.start()

    def add_user(self, user: str, password: str) -> None:
        """A registrar account; from any thread (the long calls start their phones at the same time)."""
        with self._users_lock:
            self.kam.add_user(user, password)

    def start_ours(
        self, extra: str = "", env: dict[str, str] | None = None, launcher: list[str] | None = None
    ) -> PhoneProcess:
        self.ours = self.start_phone(OURS_USER, self.device_id, extra, env, launcher)
        return self.ours

    def start_phone(
        self,
        user: str,
        device_id: str,
        extra: str = "",
        env: dict[str, str] | None = None,
        launcher: list[str] | None = None,
    ) -> PhoneProcess:
        """One more of our phones (``ours`` is one), extension ``user``, on the lab's broker; ``env``
        replaces the launcher's default environment additions (``PhoneProcess.env``), ``launcher`` its
        command (``PhoneProcess.launcher``)."""
        self._starts += 1
        workdir = self.dir / f"ours-{self._starts}"
        if user != OURS_USER:
            self.add_user(user, PHONE_PASSWORD)
        text = phone_config_text(
            workdir,
            self.registrar,
            free_port(),
            device_id=device_id,
            user=user,
            mqtt_port=self.broker.port,
            mic_file=self.mic_wav,
            extra=extra,
        )
        text = text.replace('level = "DEBUG"', 'level = "INFO"')
        sip_port = int(text.split("local_port = ")[1].split("\n")[0])
        phone = PhoneProcess(workdir, text, sip_port, launcher=launcher)
        if env is not None:
            phone.env = env
        phone.start()
        return phone

    def start_far_end(
        self,
        user: str,
        *,
        auto_answer: bool,
        codecs: str = "G722/16000/1,PCMA,PCMU",
        idle_player: bool = True,
    ) -> TimedBaresip:
        """One more far end (a baresip playing the far end's marks, its player idle)."""
        self.add_user(user, f"pw{user}")
        far = TimedBaresip(
            self.dir / f"far-{user}",
            user=user,
            password=f"pw{user}",
            registrar=self.registrar,
            auto_answer=auto_answer,
            source_wav=self.far_wav,
            codecs=codecs,
            idle_player=idle_player,
        )
        far.start()
        return far

    def wait_ours_registered(self, timeout: float = 15.0) -> None:
        assert self.ours is not None
        self.ours.wait_for(lambda s: s["registered"], timeout, "registration")

    def start_bs(self) -> TimedBaresip:
        self._starts += 1
        self.bs = TimedBaresip(
            self.dir / f"bs-{self._starts}",
            user=BS_USER,
            password="pw3",
            registrar=self.registrar,
            auto_answer=False,
            source_wav=self.mic_wav,
            codecs="G722/16000/1,PCMA,PCMU",
            paced_audio=True,
        )
        self.bs.extra_config = bs_mqtt_config(self.broker.port)
        self.bs.start()
        return self.bs

    def wait_bs_registered(self, timeout: float = 15.0) -> None:
        assert self.bs is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bs.events_of("REGISTER_OK") or "200 OK" in self.bs.log_text():
                return
            time.sleep(0.02)
        raise TimeoutError("baresip phone did not register")

    def stop_ours(self) -> None:
        if self.ours is not None:
            self.ours.stop()
            self.ours = None

    def stop_bs(self) -> None:
        if self.bs is not None:
            self.bs.stop()
            self.bs = None

    def stop(self) -> None:
        for step in (self.stop_ours, self.stop_bs):
            with contextlib.suppress(Exception):
                step()
        if self.far is not None:
            with contextlib.suppress(Exception):
                self.far.stop()
        if self.crm is not None:
            self.crm.stop()
        self.broker.stop()
        self.kam.stop()


def proc_stat(pid: int) -> tuple[float, int, int]:
    """(CPU seconds user+system, RSS kB, open fds) of a process."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return cpu, rss, fds


def rss_split(pid: int) -> dict[str, float]:
    """RssAnon (heaps, stacks) and RssFile (the interpreter's, pjsua2's, OpenSSL's... pages), MiB."""
    split = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            split[key] = round(int(value.split()[0]) / 1024, 1)
    return split
