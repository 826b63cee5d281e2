"""Typed events: your dataclasses as event types, with schema versions and upcasting.

The wire format does not change: an event's ``data`` is still a JSON object (the
dataclass's fields), so readers in other languages are unaffected. What is added:

- the **type name** is the event's ``event_type`` (default: the class name);
- the **schema version** is in the event's metadata under `SCHEMA_KEY`
  (``"aether.schema"``), as a decimal string (``"2"``); an event without it is version 1
  (events written before typing, or by other writers);
- **upcasters** turn the data of an old version into the next one, applied on read
  (``{1: v1_to_v2, 2: v2_to_v3}``; a value may also be ``(target_version, fn)`` to skip
  versions). They are checked when registered: one for every version below the current
  one (no gaps), each to a later version (no cycles), one per type and class (no
  duplicates);
- an event whose type is not registered is returned as the plain `Event` it is.

Snapshots get the same treatment: `Registry.to_snapshot` stores
``{"aether.type": name, "aether.schema": version, "data": {...}}`` as the snapshot's
state; `Registry.from_snapshot` upcasts and rebuilds it. `Registry.state_codec` gives the
codec `aether.state.load` and `execute` take for such states.

Fields may be JSON values, nested dataclasses, lists, tuples, sets (stored as sorted
arrays) and dicts of them, and
enums (stored by value); on read they are rebuilt from the field annotations.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aether.errors import InvalidEventError, ValidationError
from aether.event import Event, JSONValue, Snapshot, check_json_value
from aether.subjects import validate_event_type

__all__ = ["SCHEMA_KEY", "SNAPSHOT_DATA", "SNAPSHOT_TYPE", "Registry", "TypedStateCodec"]

SCHEMA_KEY = "aether.schema"
"""The event metadata key holding the schema version of the event's data (``"2"``)."""
SNAPSHOT_TYPE = "aether.type"
"""The key of a typed snapshot's state naming its registered type."""
SNAPSHOT_DATA = "data"
"""The key of a typed snapshot's state holding the state's fields."""

T = TypeVar("T")

Upcaster = Callable[[dict[str, JSONValue]], dict[str, JSONValue]]
"""Turns the data of one schema version into the data of a later one."""


@dataclass(frozen=True, slots=True)
class _Kind:
    cls: type[Any]
    name: str
    version: int
    upcasters: dict[int, tuple[int, Upcaster]]
    hints: dict[str, Any]


class Registry:
    """Maps dataclasses to event types (and snapshot states) and back.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Deposited:
    ...     amount: int
    >>> registry = Registry()
    >>> registry.register(Deposited)
    <class 'aether.typed.Deposited'>
    >>> registry.from_event(registry.to_event(Deposited(5), "acct-1", 1))
    Deposited(amount=5)
    """

    def __init__(self) -> None:
        self._by_class: dict[type[Any], _Kind] = {}
        self._by_name: dict[str, _Kind] = {}

    def register(
        self,
        cls: type[T],
        *,
        type: str | None = None,
        version: int = 1,
        upcasters: Mapping[int, Upcaster | tuple[int, Upcaster]] | None = None,
    ) -> type[T]:
        """Register dataclass `cls` as event type `type` (default: its name) at schema
        `version`, reading older versions through `upcasters`; returns `cls`.

        Raises `ValidationError` for a class or type registered already, a version below
        1, or upcasters with a gap, a cycle (a target not after its source) or a target
        beyond `version`.
        """
        if not isinstance(cls, builtins_type) or not dataclasses.is_dataclass(cls):
            raise ValidationError("cls", f"must be a dataclass, got {cls!r}")
        name = cls.__name__ if type is None else type
        validate_event_type(name, "type")
        if builtins_type(version) is not int or version < 1:
            raise ValidationError("version", f"must be an integer >= 1, got {version!r}")
        if cls in self._by_class:
            raise ValidationError("cls", f"{cls.__qualname__} is registered already")
        if name in self._by_name:
            other = self._by_name[name].cls.__qualname__
            raise ValidationError("type", f"{name!r} is registered already (for {other})")
        steps = _check_upcasters(name, version, upcasters or {})
        hints = typing.get_type_hints(cls)
        kind = _Kind(cls, name, version, steps, hints)
        self._by_class[cls] = kind
        self._by_name[name] = kind
        return cls

    def type_name(self, cls: type[Any]) -> str:
        """The event type `cls` is registered as."""
        return self._kind_of_class(cls).name

    def knows(self, obj: object) -> bool:
        """Whether `obj` is an instance of a registered class."""
        return builtins_type(obj) in self._by_class

    def _kind_of_class(self, cls: type[Any]) -> _Kind:
        kind = self._by_class.get(cls)
        if kind is None:
            raise ValidationError("cls", f"{getattr(cls, '__qualname__', cls)!r} is not registered")
        return kind

    # -- events -------------------------------------------------------------------------

    def to_event(
        self,
        obj: object,
        actor_id: str,
        version: int,
        *,
        metadata: Mapping[str, str] | None = None,
        id: str | None = None,
    ) -> Event:
        """The `Event` of `obj` (a registered dataclass) as the actor's `version`.

        Its data is the object's fields as JSON; its metadata `metadata` plus the schema
        version under `SCHEMA_KEY`.
        """
        kind = self._kind_of_class(builtins_type(obj))
        data = _to_json(obj, "data")
        md = dict(metadata or {})
        md[SCHEMA_KEY] = str(kind.version)
        event = Event(kind.name, actor_id, version, data, metadata=md)
        return event if id is None else dataclasses.replace(event, id=id)

    def from_event(self, event: Event) -> Any:
        """The typed object of `event` (upcast to the current schema), or `event` itself
        when its type is not registered."""
        kind = self._by_name.get(event.event_type)
        if kind is None:
            return event
        where = f"event {event.event_type!r} of actor {event.actor_id!r} v{event.version}"
        version = _schema_of(event.metadata.get(SCHEMA_KEY), where, f"metadata.{SCHEMA_KEY}")
        data = self._upcast(kind, version, event.data, where)
        return _build(kind, data, "data", where)

    # -- snapshots ----------------------------------------------------------------------

    def to_snapshot(self, state: object, actor_id: str, version: int) -> Snapshot:
        """A `Snapshot` of `state` (a registered dataclass) as of the actor's `version`."""
        return Snapshot(actor_id, version, self.encode_state(state))

    def from_snapshot(self, snapshot: Snapshot) -> Any:
        """The typed state a snapshot holds (upcast), or its raw state dict when that does
        not name a registered type."""
        return self.decode_state(snapshot.state, f"snapshot of actor {snapshot.actor_id!r}")

    def encode_state(self, state: object) -> dict[str, JSONValue]:
        """The JSON object a typed snapshot stores for `state`."""
        kind = self._kind_of_class(builtins_type(state))
        return {
            SNAPSHOT_TYPE: kind.name,
            SCHEMA_KEY: kind.version,
            SNAPSHOT_DATA: _to_json(state, f"snapshot.state.{SNAPSHOT_DATA}"),
        }

    def decode_state(self, stored: dict[str, JSONValue], where: str = "snapshot") -> Any:
        """The typed state of a stored snapshot state (as `encode_state` made it)."""
        name = stored.get(SNAPSHOT_TYPE) if isinstance(stored, dict) else None
        kind = self._by_name.get(name) if isinstance(name, str) else None
        if kind is None:
            return stored
        schema = stored.get(SCHEMA_KEY, 1)
        version = _schema_of(schema, where, f"snapshot.state.{SCHEMA_KEY}")
        data = stored.get(SNAPSHOT_DATA)
        if not isinstance(data, dict):
            raise InvalidEventError(
                f"snapshot.state.{SNAPSHOT_DATA}", f"{where}: must be a JSON object"
            )
        data = self._upcast(kind, version, data, where)
        return _build(kind, data, f"snapshot.state.{SNAPSHOT_DATA}", where)

    def state_codec(self, cls: type[T]) -> TypedStateCodec[T]:
        """The codec `aether.state.load`/`execute` snapshot a `cls` state with."""
        self._kind_of_class(cls)
        return TypedStateCodec(self, cls)

    # -- upcasting ----------------------------------------------------------------------

    def _upcast(
        self, kind: _Kind, version: int, data: dict[str, JSONValue], where: str
    ) -> dict[str, JSONValue]:
        if version > kind.version:
            raise InvalidEventError(
                SCHEMA_KEY,
                f"{where}: schema version {version} is newer than the registered "
                f"{kind.version} of {kind.name!r} (upgrade this reader)",
            )
        current = version
        while current < kind.version:
            target, fn = kind.upcasters[current]
            data = fn(dict(data))
            if not isinstance(data, dict):
                raise InvalidEventError(
                    "upcasters",
                    f"{kind.name!r} upcaster from version {current} returned "
                    f"{builtins_type(data).__name__}, not a dict",
                )
            current = target
        return data


class TypedStateCodec(Generic[T]):
    """A `aether.state.StateCodec` for a registered dataclass state (with upcasting)."""

    def __init__(self, registry: Registry, cls: type[T]) -> None:
        self.registry = registry
        self.cls = cls

    def encode(self, state: T) -> dict[str, JSONValue]:
        """The typed snapshot state of `state`."""
        return self.registry.encode_state(state)

    def decode(self, data: dict[str, JSONValue]) -> T:
        """The `cls` object a typed snapshot state holds."""
        state = self.registry.decode_state(data)
        if not isinstance(state, self.cls):
            raise InvalidEventError(
                f"snapshot.state.{SNAPSHOT_TYPE}",
                f"holds {data.get(SNAPSHOT_TYPE)!r}, not {self.registry.type_name(self.cls)!r}",
            )
        return state


builtins_type = type


def _check_upcasters(
    name: str, version: int, upcasters: Mapping[int, Upcaster | tuple[int, Upcaster]]
) -> dict[int, tuple[int, Upcaster]]:
    if not isinstance(upcasters, Mapping):
        raise ValidationError("upcasters", "must be a mapping {from_version: function}")
    steps: dict[int, tuple[int, Upcaster]] = {}
    for source, value in upcasters.items():
        if builtins_type(source) is not int or not 1 <= source < version:
            raise ValidationError(
                "upcasters",
                f"{name!r}: source version {source!r} is not between 1 and {version - 1} "
                f"(the current version is {version})",
            )
        if isinstance(value, tuple):
            if len(value) != 2 or builtins_type(value[0]) is not int or not callable(value[1]):
                raise ValidationError(
                    f"upcasters[{source}]", "must be a function or (target_version, function)"
                )
            target, fn = value
        elif callable(value):
            target, fn = source + 1, value
        else:
            raise ValidationError(
                f"upcasters[{source}]", "must be a function or (target_version, function)"
            )
        if target <= source:
            raise ValidationError(
                f"upcasters[{source}]",
                f"{name!r}: target version {target} is not after {source} (a cycle)",
            )
        if target > version:
            raise ValidationError(
                f"upcasters[{source}]",
                f"{name!r}: target version {target} is beyond the current version {version}",
            )
        steps[source] = (target, fn)
    missing = [v for v in range(1, version) if v not in steps]
    if missing:
        raise ValidationError(
            "upcasters",
            f"{name!r} is at version {version} but has no upcaster from version "
            f"{', '.join(map(str, missing))} (a gap)",
        )
    return steps


def _schema_of(value: object, where: str, field: str) -> int:
    if value is None:
        return 1
    if isinstance(value, int) and builtins_type(value) is not bool:
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise InvalidEventError(field, f"{where}: schema version {value!r} is not an integer")
    if number < 1:
        raise InvalidEventError(field, f"{where}: schema version {value!r} is below 1")
    return number


def _to_json(value: object, path: str) -> Any:
    """`value` as plain JSON: dataclasses to objects, tuples to lists, enums to values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, builtins_type):
        return {
            f.name: _to_json(getattr(value, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, enum.Enum):
        return _to_json(value.value, path)
    if isinstance(value, list | tuple):
        return [_to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):  # a JSON array, sorted so equal sets encode alike
        items = [_to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if builtins_type(k) is not str:
                raise InvalidEventError(path, f"object keys must be strings, got {k!r}")
            out[k] = _to_json(v, f"{path}.{k}")
        return out
    check_json_value(value, path)  # names the field: "snapshot.state.data.xs: set is not..."
    return value


def _build(kind: _Kind, data: dict[str, JSONValue], path: str, where: str) -> Any:
    return _from_fields(kind.cls, kind.hints, data, path, where)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _from_fields(cls: type[Any], hints: dict[str, Any], data: object, path: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidEventError(path, f"{where}: must be a JSON object for {cls.__qualname__}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidEventError(
                    f"{path}.{f.name}", f"{where}: is required by {cls.__qualname__}"
                )
            continue
        kwargs[f.name] = _from_json(hints.get(f.name, Any), data[f.name], f"{path}.{f.name}", where)
    return cls(**kwargs)


def _from_json(hint: Any, value: Any, path: str, where: str) -> Any:
    if value is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _from_json(options[0], value, path, where) if len(options) == 1 else value
    if isinstance(hint, builtins_type):
        if dataclasses.is_dataclass(hint):
            nested = _HINTS.get(hint)
            if nested is None:
                nested = _HINTS[hint] = typing.get_type_hints(hint)
            return _from_fields(hint, nested, value, path, where)
        if issubclass(hint, enum.Enum):
            try:
                return hint(value)
            except ValueError:
                raise InvalidEventError(
                    path, f"{where}: {value!r} is not a {hint.__name__}"
                ) from None
        if hint is float and builtins_type(value) is int:
            return float(value)
        return value
    args = typing.get_args(hint)
    if origin in (list, set, frozenset) and args and isinstance(value, list):
        items = [_from_json(args[0], v, f"{path}[{i}]", where) for i, v in enumerate(value)]
        return items if origin is list else origin(items)
    if origin is tuple and args and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v, f"{path}[{i}]", where) for i, v in enumerate(value))
        return tuple(
            _from_json(a, v, f"{path}[{i}]", where)
            for i, (a, v) in enumerate(zip(args, value, strict=False))
        )
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _from_json(args[1], v, f"{path}.{k}", where) for k, v in value.items()}
    return value
