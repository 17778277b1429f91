"""Busy light main loop (MicroPython on a Pico W or any board with Wi-Fi).

Reads ``config.json``, joins the Wi-Fi, subscribes to the watched phones' ``status`` and ``events``
with micropython-lib's ``umqtt.robust`` and drives the LEDs through ``busylight.logic``. Reconnects
(Wi-Fi, then broker, then subscriptions) whenever the connection is lost; ``machine.WDT`` restarts
a board whose loop stops turning.
"""

import json
import time

import machine
import network
from busylight import leds
from busylight.logic import BusyLight
from umqtt import robust, simple

CONFIG = "config.json"
LOOP_MS = 20


def log(*args):
    print("busylight:", *args)


class Watchdog:
    def __init__(self, timeout_ms):
        self.wdt = machine.WDT(timeout=timeout_ms) if timeout_ms else None

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def sleep_ms(self, ms):
        """Sleep without letting the watchdog bite."""
        while ms > 0:
            self.feed()
            step = min(ms, 200)
            time.sleep_ms(step)
            ms -= step


class Wifi:
    def __init__(self, config, watchdog):
        self.ssid = config["ssid"]
        self.password = config.get("password", "")
        self.watchdog = watchdog
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        if hasattr(network, "hostname") and config.get("hostname"):
            network.hostname(config["hostname"])

    def ensure(self):
        """Connect if not connected; blocks (feeding the watchdog) until the link is up."""
        delay = 1000
        while not self.wlan.isconnected():
            log("joining Wi-Fi", self.ssid)
            self.wlan.connect(self.ssid, self.password)
            for _ in range(100):  # 10 s per attempt
                if self.wlan.isconnected():
                    break
                self.watchdog.sleep_ms(100)
            if not self.wlan.isconnected():
                self.wlan.disconnect()
                self.watchdog.sleep_ms(delay)
                delay = min(delay * 2, 30000)
        return self.wlan.ifconfig()[0]


class Client(robust.MQTTClient):
    """umqtt.robust that renews its Wi-Fi and subscriptions on every reconnect and keeps the
    watchdog fed while it waits between attempts."""

    def setup(self, wifi, watchdog, topics):
        self.wifi, self.watchdog, self.topics = wifi, watchdog, topics
        self.last_ping = time.ticks_ms()

    def delay(self, i):
        self.watchdog.sleep_ms(min(1000 * (i + 1), 10000))
        self.wifi.ensure()

    def log(self, in_reconnect, e):
        log("mqtt reconnect:" if in_reconnect else "mqtt:", repr(e))

    def subscribe_all(self):
        for topic in self.topics:
            simple.MQTTClient.subscribe(self, topic, 1)  # not robust's: it would recurse into reconnect

    def reconnect(self):
        try:  # noqa: SIM105 - MicroPython has no contextlib unless installed
            self.sock.close()
        except Exception:
            pass
        super().reconnect()
        self.subscribe_all()
        self.last_ping = time.ticks_ms()
        log("reconnected and resubscribed")

    def keepalive_ping(self):
        if self.keepalive and time.ticks_diff(time.ticks_ms(), self.last_ping) > self.keepalive * 500:
            self.last_ping = time.ticks_ms()
            try:
                self.ping()
            except OSError as e:
                self.log(False, e)
                self.reconnect()


def main():
    with open(CONFIG) as f:
        config = json.load(f)
    watchdog = Watchdog(config.get("watchdog_ms", 8000))
    phones = config["phones"]
    driver = leds.make(config["leds"], len(phones))
    light = BusyLight.from_config(
        config, show=driver.show, clock=time.ticks_ms, ticks_diff=time.ticks_diff, pixels=driver.count
    )
    wifi = Wifi(config["wifi"], watchdog)
    log("Wi-Fi up:", wifi.ensure())
    broker = config["mqtt"]
    ssl = None
    if broker.get("tls"):
        import tls

        ssl = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ssl.verify_mode = tls.CERT_NONE if broker.get("insecure") else tls.CERT_REQUIRED
        if broker.get("ca_file"):
            ssl.load_verify_locations(cafile=broker["ca_file"])
    client = Client(
        broker.get("client_id") or broker["username"],
        broker["host"],
        port=broker.get("port", 8883 if ssl else 1883),
        user=broker.get("username"),
        password=broker.get("password"),
        keepalive=broker.get("keepalive_s", 30),
        ssl=ssl,
    )
    client.setup(wifi, watchdog, light.subscriptions())
    client.set_callback(light.handle)
    while True:
        try:
            client.connect(True)
            break
        except OSError as e:
            log("broker not reachable:", repr(e))
            client.delay(1)
    client.subscribe_all()
    log("watching", ", ".join(phones))
    while True:
        watchdog.feed()
        if not wifi.wlan.isconnected():
            wifi.ensure()
            client.reconnect()
        client.check_msg()  # robust: reconnects (and resubscribes) on a broken connection
        client.keepalive_ping()
        light.tick()
        time.sleep_ms(LOOP_MS)


try:
    main()
except Exception as e:  # a crash is a reboot after a pause, never a dark, dead light
    log("fatal:", repr(e))
    time.sleep(5)
    machine.reset()
