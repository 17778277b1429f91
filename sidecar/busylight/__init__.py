# Busy light for desk phones (MicroPython). logic: pure state; leds: the drivers; app: the board's loop.
