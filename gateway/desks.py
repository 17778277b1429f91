"""Desk <-> CRM user, read from the office inventory (``office.csv``, the installers' one source).

The inventory's own parser (``tools.provisioning.inventory``) reads the file, so the gateway and
``tools/flash.py`` can never disagree about it. A desk whose ``crm_user`` is empty (the accountant's
plain extension) is known but never reported to a CRM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tools.provisioning.errors import InvalidDevice
from tools.provisioning.inventory import load_inventory

from .calls import Desk


class InventoryError(ValueError):
    """The inventory cannot be used; ``errors`` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


@dataclass(frozen=True)
class Desks:
    """The office's phones, looked up by device id, extension or CRM user."""

    desks: tuple[Desk, ...]

    @classmethod
    def load(cls, path: Path) -> Desks:
        try:
            rows = load_inventory(path)
        except InvalidDevice as error:
            raise InventoryError(list(getattr(error, "errors", [str(error)]))) from None
        desks = tuple(
            Desk(r.device.device_id, r.device.extension, r.device.owner.strip(), r.device.name) for r in rows
        )
        users: dict[str, str] = {}
        problems = []
        for desk in desks:
            if desk.crm_user and desk.crm_user in users:
                problems.append(
                    f"{path}: crm_user {desk.crm_user!r} sits at two desks ({users[desk.crm_user]}, "
                    f"{desk.device_id}); calls must be credited to one person"
                )
            users.setdefault(desk.crm_user, desk.device_id)
        if problems:
            raise InventoryError(problems)
        return cls(desks)

    def by_device(self, device_id: str) -> Desk | None:
        return next((d for d in self.desks if d.device_id == device_id), None)

    def by_crm_user(self, crm_user: str) -> Desk | None:
        if not crm_user:
            return None
        return next((d for d in self.desks if d.crm_user == crm_user), None)

    def is_extension(self, number: str) -> bool:
        """Whether ``number`` is one of our own extensions (a call to it is internal)."""
        return any(d.extension == number for d in self.desks)
