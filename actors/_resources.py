"""``Resources``: what a task asks for (or a host has) by name, as an immutable map.

One shape serves every place an operation runs: ``{"gpu": 1, "vram_gb": 24}`` asks the
host's resource slots (``TaskManager(resources=...)``) for a thread, process or
coroutine task, and a Ray node's resources for a Ray task. A name is a short
identifier; an amount is a finite number greater than 0. The map is hashable (tasks
given the same options share one resolved ``TaskOptions``) and compares equal to a
``dict`` with the same items.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["MAX_RESOURCE_AMOUNT", "MAX_RESOURCE_NAMES", "Resources", "check_resources"]

MAX_RESOURCE_NAMES = 64
"""The most resource names one map may hold."""

MAX_RESOURCE_AMOUNT = 1e12
"""The largest amount of one resource (larger ones are typing mistakes)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_REAL = (int, float)


class Resources(Mapping[str, float]):
    """An immutable map of resource names to amounts, each checked when it is made.

    ``Resources({"gpu": 1})``, ``Resources(gpu=1)`` and ``Resources.parse("gpu=1")``
    are the same map; amounts are kept as floats."""

    __slots__ = ("_amounts", "_hash")

    def __init__(self, amounts: Mapping[str, Any] | None = None, /, **named: Any) -> None:
        given = dict(amounts or {}, **named)
        if len(given) > MAX_RESOURCE_NAMES:
            raise ValueError(
                f"resources may name at most {MAX_RESOURCE_NAMES} resources, got {len(given)}"
            )
        checked: dict[str, float] = {}
        for name in sorted(given):  # one order, so equal maps hash and print alike
            checked[_checked_name(name)] = _checked_amount(name, given[name])
        self._amounts = checked
        self._hash: int | None = None

    @classmethod
    def parse(cls, text: str) -> Resources:
        """A map from ``"gpu=1,vram_gb=24"`` (the CLI's form); a bad item names itself."""
        amounts: dict[str, Any] = {}
        for item in text.split(","):
            name, equals, amount = item.strip().partition("=")
            if not equals or not name.strip() or not amount.strip():
                raise ValueError(
                    f"resources must be NAME=AMOUNT items separated by commas, such as "
                    f"gpu=1,vram_gb=24; got {item.strip()!r}"
                )
            try:
                number = float(amount)
            except ValueError:
                raise ValueError(
                    f"the amount of resource {name.strip()!r} must be a number, got {amount!r}"
                ) from None
            amounts[name.strip()] = number
        return cls(amounts)

    def __getitem__(self, name: str) -> float:
        return self._amounts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._amounts)

    def __len__(self) -> int:
        return len(self._amounts)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._amounts.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Resources):
            return self._amounts == other._amounts
        if isinstance(other, Mapping):
            return self._amounts == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Resources({self._amounts!r})"

    def as_dict(self) -> dict[str, float]:
        """A plain ``dict`` copy (JSON, a status dict)."""
        return dict(self._amounts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Resources, (self._amounts,))


def check_resources(name: str, value: Any) -> Resources | None:
    """A ``resources`` argument: None, or a mapping of names to amounts (an empty one
    asks for nothing, which is None)."""
    if value is None:
        return None
    if isinstance(value, Resources):
        return value or None
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a mapping of resource names to amounts, such as "
            f'{{"gpu": 1}}, got {type(value).__name__}'
        )
    try:
        resources = Resources(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    return resources or None


def _checked_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a resource name must be a str, got {type(name).__name__}: {name!r}")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"resource name {name!r} must start with a letter or _ and hold at most 64 "
            "letters, digits, _, . or -"
        )
    return name


def _checked_amount(name: str, amount: Any) -> float:
    if isinstance(amount, bool) or not isinstance(amount, _REAL):
        raise TypeError(
            f"the amount of resource {name!r} must be a number, got {type(amount).__name__}"
        )
    if not math.isfinite(amount) or amount <= 0:
        raise ValueError(
            f"the amount of resource {name!r} must be a finite number > 0, got {amount!r} "
            "(leave a resource out to ask for none of it)"
        )
    if amount > MAX_RESOURCE_AMOUNT:
        raise ValueError(
            f"the amount of resource {name!r} must be at most {MAX_RESOURCE_AMOUNT:g}, "
            f"got {amount!r}"
        )
    return float(amount)
