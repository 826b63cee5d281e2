"""The JSON value rules of event data, metadata and snapshot state, checked without recursion.

A JSON value is None, a bool, an int, a finite float, a str, a list of JSON values or a
dict with str keys and JSON values. Containers nest at most `MAX_DEPTH` deep (the root
container counts as depth 1), a container that contains itself is refused, and one value
holds at most `MAX_VALUES` values in all (shared sub-containers count each time they
appear, which is how they are encoded). Integers beyond 64 bits and strings that are
not valid UTF-8 are refused by the encoder (orjson), which names the top-level field.

`shape_ok` is the hot path of the encoder and of the local bus (a bool, no paths
built); `check_value` names the first problem in iteration order as an
`InvalidEventError` with a path such as ``data.a.b[1]``.
Both walk an explicit stack, so a deeply nested or cyclic value cannot exhaust Python's
recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from aether.errors import InvalidEventError

MAX_DEPTH: Final = 64
"""Deepest nesting of containers in event data and snapshot state (the root is depth 1)."""

MAX_VALUES: Final = 1_000_000
"""Most values (scalars and containers, root excluded) one data or state value holds."""


def shape_ok(root: dict[str, object]) -> bool:
    """True when every value in `root` (a dict) is of a JSON type, every float finite, and
    the containers nest at most `MAX_DEPTH` deep and hold at most `MAX_VALUES` values;
    False means "ask `check_value`". It leaves the rules orjson enforces itself (str keys,
    64-bit integers, valid UTF-8) to orjson."""
    # Explicit loops with the scalar cases first and inline: by instruction count this
    # beats set(map(type, ...)) tricks. Flat data, the common case, allocates nothing.
    below: list[Any] | None = None
    seen = 0
    x: Any
    y: Any
    for x in root.values():
        t = type(x)
        if t is str or t is int or t is bool or x is None:
            continue
        if t is float:
            if x - x == 0.0:
                continue
            return False
        if t is list:
            # A list of scalars (tags, ids, amounts) is checked here: half the cost of a
            # level walk. Anything else in it sends the whole list to `_levels_ok`.
            for y in x:
                u = type(y)
                if u is str or u is int or u is bool or y is None:
                    continue
                if u is float and y - y == 0.0:
                    continue
                break
            else:
                seen += len(x)
                continue
        elif t is not dict:
            return False
        if below is None:
            below = []
        below.append(x)
    if below is None:
        return seen <= MAX_VALUES
    return _levels_ok(below, seen)


def _levels_ok(level: list[Any], seen: int = 0) -> bool:
    depth = 2
    while level:
        if depth > MAX_DEPTH:
            return False  # a cycle ends here too: it is infinitely deep
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            seen += len(items)
            for x in items:
                t = type(x)
                if t is str or t is int or t is bool or x is None:
                    continue
                if t is float:
                    if x - x == 0.0:
                        continue
                    return False
                if t is dict or t is list:
                    below.append(x)
                else:
                    return False
        if seen > MAX_VALUES:
            return False
        level = below
        depth += 1
    return True


def check_value(value: object, path: str) -> None:
    """Raise `InvalidEventError` naming the first part of `value` that is not plain JSON.

    `path` names `value` itself (``data``, ``snapshot.state``); parts are named below it:
    ``data.items[2].sku``.
    """
    problem = first_problem(value, path)
    if problem is not None:
        raise InvalidEventError(*problem)


class _Frame:
    """One container being walked: its items still to visit and where it is."""

    __slots__ = ("depth", "is_list", "items", "key", "path")

    def __init__(
        self, container: dict[object, object] | list[object], path: str, depth: int
    ) -> None:
        self.key = id(container)
        self.path = path
        self.depth = depth
        self.is_list = type(container) is list
        self.items: Iterator[tuple[object, object]]
        if isinstance(container, dict):
            self.items = iter(container.items())
        else:
            self.items = enumerate(container)


def first_problem(value: object, path: str) -> tuple[str, str] | None:
    """The (field, rule) of the first problem in `value`, depth first, or None."""
    problem = _scalar_problem(value, path)
    if problem is not None or not (type(value) is dict or type(value) is list):
        return problem
    frames = [_Frame(value, path, 1)]
    on_path = {frames[0].key}
    seen = 0
    while frames:
        frame = frames[-1]
        entry = next(frame.items, None)
        if entry is None:
            frames.pop()
            on_path.discard(frame.key)
            continue
        key, x = entry
        if frame.is_list:
            child = f"{frame.path}[{key}]"
        elif type(key) is str:
            child = f"{frame.path}.{key}"
        else:
            return frame.path, f"object keys must be strings, got {key!r}"
        seen += 1
        if seen > MAX_VALUES:
            return path, f"holds more than {MAX_VALUES} values"
        problem = _scalar_problem(x, child)
        if problem is not None:
            return problem
        if type(x) is dict or type(x) is list:
            if id(x) in on_path:
                return child, "contains itself (a cycle cannot be encoded as JSON)"
            if frame.depth + 1 > MAX_DEPTH:
                return child, f"nests deeper than {MAX_DEPTH} levels"
            frames.append(_Frame(x, child, frame.depth + 1))
            on_path.add(frames[-1].key)
    return None


def _scalar_problem(x: object, path: str) -> tuple[str, str] | None:
    t = type(x)
    if t is str or t is int or t is bool or x is None or t is dict or t is list:
        return None
    if t is float:
        if x - x != 0.0:  # type: ignore[operator]
            return path, "NaN and infinity are not valid JSON numbers"
        return None
    return path, f"{t.__name__} is not a JSON value"
