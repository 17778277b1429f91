"""The phone as a pure state machine: ``step(state, input, now) -> (state, effects)``.

No threads, no I/O and no clock reads: the daemon feeds inputs (commands, SIP facts, timer firings)
with the current time and carries out the effects. See ``state.Mode`` for the states.
"""

from firmware.phone.outputs import Outputs, initial_effects, outputs_of
from firmware.phone.state import ClickToCall, Mode, PhoneSettings, PhoneState, initial_state
from firmware.phone.step import CLICK_TO_CALL_TIMER, INTERDIGIT_TIMER, step

__all__ = [
    "CLICK_TO_CALL_TIMER",
    "INTERDIGIT_TIMER",
    "ClickToCall",
    "Mode",
    "Outputs",
    "PhoneSettings",
    "PhoneState",
    "initial_effects",
    "initial_state",
    "outputs_of",
    "step",
]
