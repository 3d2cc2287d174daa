"""Redis replies as the types the service expects, checked in one place.

redis-py types a reply as a union of everything the command could answer under any protocol
and any client option; the service's clients decode responses (connections.py), so text comes
back as str. A reply of another shape raises TypeError here instead of travelling on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def text(reply: object) -> str:
    """Return a reply that must be text."""
    if isinstance(reply, str):
        return reply
    raise TypeError(f"expected a decoded text reply, got {type(reply).__name__}")


def integer(reply: object) -> int:
    """Return a reply that must be an integer, or text that holds one."""
    if isinstance(reply, (int, str)):
        return int(reply)
    raise TypeError(f"expected an integer reply, got {type(reply).__name__}")


def integers(reply: Iterable[object]) -> list[int]:
    """Return the members of a set or sorted-set reply that hold integers (user ids)."""
    return [integer(member) for member in reply]


def texts(reply: object) -> dict[str, str]:
    """Return a reply that must map text to text (CONFIG GET, a stream entry's fields)."""
    if not isinstance(reply, Mapping):
        raise TypeError(f"expected a mapping reply, got {type(reply).__name__}")
    return {text(name): text(value) for name, value in reply.items()}


def scored(reply: Iterable[object]) -> list[tuple[str, float]]:
    """Return a WITHSCORES reply (scores cast to float) as (member, score) pairs."""
    pairs = []
    for pair in reply:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[1], float):
            raise TypeError(f"expected a (member, score) pair, got {pair!r}")
        pairs.append((text(pair[0]), pair[1]))
    return pairs
