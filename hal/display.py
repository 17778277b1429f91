"""The display line. The reference board has no display yet: the text is kept and logged."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class LogDisplay:
    """A display that logs each line it is asked to show. A character LCD is a later extension that
    implements the same ``show``/``text``/``close``."""

    def __init__(self) -> None:
        self._text = ""

    @property
    def text(self) -> str:
        return self._text

    def show(self, text: str) -> None:
        if text != self._text:
            self._text = text
            logger.info("display: %r", text)

    def close(self) -> None:
        pass
