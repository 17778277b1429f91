"""Fixtures for the sip_stack tests: an event recorder and a user agent factory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.servers.kamailio import Kamailio
from sip_stack import SipSettings
from sip_stack.events import SipEvent


class EventRecorder:
    """Collects SIP events (from the sip thread) and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[SipEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: SipEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(
        self, kind: type[Any], predicate: Callable[[Any], bool] = lambda e: True, timeout: float = 10.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if isinstance(event, kind) and predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {kind.__name__} within {timeout}s; got {self.events}")
                self._cond.wait(remaining)

    def of(self, kind: type[Any]) -> list[Any]:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def ua_factory() -> Iterator[Callable[..., tuple[Any, EventRecorder]]]:
    """``ua_factory(settings)`` -> (started UserAgent, its EventRecorder); stopped at teardown."""
    from sip_stack.agent import UserAgent

    started: list[UserAgent] = []

    def start(settings: SipSettings) -> tuple[UserAgent, EventRecorder]:
        recorder = EventRecorder()
        agent = UserAgent(settings, recorder)
        started.append(agent)
        agent.start()
        return agent, recorder

    try:
        yield start
    finally:
        for agent in reversed(started):
            agent.stop()


def phone_settings(
    kamailio: Kamailio, user: str = "phone", password: str = "phonepw", **kw: Any
) -> SipSettings:
    kamailio.add_user(user, password)
    return SipSettings(
        registrar=f"{kamailio.host}:{kamailio.port}",
        user=user,
        password=password,
        bind_address="127.0.0.1",
        **kw,
    )
