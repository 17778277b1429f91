"""LED drivers for the busy light (MicroPython, ``machine``/``neopixel``).

Each driver has ``count`` (how many pixels the logic should produce) and ``show(pixels)`` taking a
list of ``(r, g, b)`` tuples. Chosen by the ``leds`` section of ``config.json``:

* ``{"type": "neopixel", "pin": 28, "brightness": 0.25}``: a WS2812 strip, one pixel per phone.
* ``{"type": "rgb", "pins": [13, 14, 15], "common_anode": false}``: one RGB LED on three PWM pins;
  it shows the most urgent state of all watched phones.
* ``{"type": "plain", "phones": [{"red": 2, "green": 3}, ...]}``: plain LEDs, a set per phone
  (``red``, ``green``, optional ``blue``), each on when its colour channel is at least half.
"""

import machine


def _scale(value, brightness):
    return int(value * brightness + 0.5)


class NeoPixelStrip:
    def __init__(self, config, phones):
        import neopixel

        self.count = phones
        self.brightness = float(config.get("brightness", 0.25))
        self.np = neopixel.NeoPixel(machine.Pin(config["pin"], machine.Pin.OUT), phones)

    def show(self, pixels):
        b = self.brightness
        for i, (r, g, bl) in enumerate(pixels):
            self.np[i] = (_scale(r, b), _scale(g, b), _scale(bl, b))
        self.np.write()


class RgbLed:
    count = 1

    def __init__(self, config, phones):
        self.invert = bool(config.get("common_anode", False))
        self.brightness = float(config.get("brightness", 1.0))
        self.pwm = []
        for pin in config["pins"]:
            pwm = machine.PWM(machine.Pin(pin))
            pwm.freq(1000)
            self.pwm.append(pwm)

    def show(self, pixels):
        for pwm, value in zip(self.pwm, pixels[0]):  # noqa: B905 - MicroPython's zip has no strict=
            duty = _scale(value, self.brightness) * 257  # 0..65535
            pwm.duty_u16(65535 - duty if self.invert else duty)


class PlainLeds:
    def __init__(self, config, phones):
        sets = config["phones"]
        if len(sets) != phones:
            raise ValueError("leds.phones: one set of pins per watched phone")
        self.count = phones
        self.invert = bool(config.get("active_low", False))
        self.pins = []
        for pins in sets:
            self.pins.append(
                [
                    machine.Pin(pins[c], machine.Pin.OUT) if c in pins else None
                    for c in ("red", "green", "blue")
                ]
            )

    def show(self, pixels):
        for pins, rgb in zip(self.pins, pixels):  # noqa: B905 - MicroPython's zip has no strict=
            for pin, value in zip(pins, rgb):  # noqa: B905
                if pin is not None:
                    pin.value((value >= 128) != self.invert)


DRIVERS = {"neopixel": NeoPixelStrip, "rgb": RgbLed, "plain": PlainLeds}


def make(config, phones):
    kind = config.get("type")
    if kind not in DRIVERS:
        raise ValueError("leds.type: one of neopixel, rgb, plain")
    return DRIVERS[kind](config, phones)
