"""The one error mapping: JetStream codes and nats-py exceptions -> aether.errors."""

from __future__ import annotations

import ssl

import nats.errors
import pytest
from nats.aio.client import Client as NATS

from aether._nats import errors as m
from aether._nats.errors import (
    JsApiError,
    TransportRefused,
    classify_connect_failure,
    cluster_failure,
    map_nats_error,
    public_error,
)
from aether.errors import (
    AetherError,
    AuthError,
    ClusterError,
    ConfigError,
    EventTooLargeError,
    NatsUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    TlsRequiredError,
    UnsupportedServerError,
)

API_TABLE: list[tuple[int, int, type[AetherError], bool]] = [
    # (code, err_code) -> the public class; retriable
    (503, m.ERR_JETSTREAM_NOT_ENABLED, UnsupportedServerError, False),
    (503, m.ERR_JETSTREAM_NOT_ENABLED_ACCOUNT, UnsupportedServerError, False),
    (503, 10008, NatsUnavailableError, True),  # cluster not available / busy
    (400, m.ERR_DUPLICATE_IN_PROCESS, NatsUnavailableError, True),
    (404, m.ERR_STREAM_NOT_FOUND, NotFoundError, False),
    (404, m.ERR_NO_MESSAGE_FOUND, NotFoundError, False),
    (404, m.ERR_CONSUMER_NOT_FOUND, NotFoundError, False),
    (403, 10999, PermissionDeniedError, False),
    (400, m.ERR_WRONG_LAST_SEQUENCE, AetherError, False),
    (400, m.ERR_ATOMIC_DISABLED, AetherError, False),
]


@pytest.mark.parametrize(("code", "err_code", "cls", "retriable"), API_TABLE)
def test_jetstream_codes_map_to_aether_errors(
    code: int, err_code: int, cls: type[AetherError], retriable: bool
) -> None:
    e = JsApiError.from_response({"code": code, "err_code": err_code, "description": "d"})
    out = public_error(e, "the thing")
    assert type(out) is cls
    assert not isinstance(out, JsApiError)
    assert out.retriable is retriable
    assert "d" in str(out)


def test_conflict_and_busy_are_defined_once() -> None:
    for code in (m.ERR_WRONG_LAST_SEQUENCE, m.ERR_WRONG_LAST_SEQUENCE_CLUSTERED):
        assert JsApiError(400, code, "wrong last sequence").conflict
    assert not JsApiError(400, m.ERR_STREAM_NOT_FOUND, "x").conflict
    assert JsApiError(400, m.ERR_DUPLICATE_IN_PROCESS, "x").busy
    assert JsApiError(503, 10008, "x").busy
    assert not JsApiError(503, m.ERR_JETSTREAM_NOT_ENABLED, "x").busy
    assert {10071, 10164} == m.CONFLICT_CODES


NATS_TABLE: list[tuple[BaseException, type[AetherError]]] = [
    (nats.errors.NoRespondersError(), NatsUnavailableError),
    (nats.errors.TimeoutError(), NatsUnavailableError),
    (TimeoutError(), NatsUnavailableError),
    (nats.errors.ConnectionClosedError(), NatsUnavailableError),
    (nats.errors.ConnectionDrainingError(), NatsUnavailableError),
    (nats.errors.NoServersError(), NatsUnavailableError),
    (nats.errors.OutboundBufferLimitError(), NatsUnavailableError),
    (nats.errors.MaxPayloadError(), EventTooLargeError),
    (nats.errors.BadSubjectError(), AetherError),
    (nats.errors.Error("anything else"), NatsUnavailableError),
    (JsApiError(404, m.ERR_STREAM_NOT_FOUND, "no stream"), NotFoundError),
]


@pytest.mark.parametrize(("exc", "cls"), NATS_TABLE, ids=lambda x: type(x).__name__)
def test_nats_py_exceptions_map_to_aether_errors(
    exc: BaseException, cls: type[AetherError]
) -> None:
    nc = NATS()  # never connected: messages name "the configured NATS server"
    out = map_nats_error(nc, exc, "a.subject", "a request")
    assert type(out) is cls
    assert not isinstance(out, nats.errors.Error)


def test_an_aether_error_passes_unchanged() -> None:
    e = NatsUnavailableError("already mapped")
    assert map_nats_error(NATS(), e, "s", "x") is e


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (nats.errors.NoRespondersError(), NatsUnavailableError),
        (nats.errors.TimeoutError(), NatsUnavailableError),
        (nats.errors.ConnectionClosedError(), NatsUnavailableError),
        (nats.errors.Error("x"), ClusterError),
        (JsApiError(500, 10000, "x"), ClusterError),
        (JsApiError(503, 10008, "x"), NatsUnavailableError),
    ],
    ids=lambda x: type(x).__name__,
)
def test_cluster_failures_map_to_aether_errors(exc: BaseException, cls: type[AetherError]) -> None:
    assert type(cluster_failure(exc, "doing it")) is cls


@pytest.mark.parametrize(
    ("errors", "cls"),
    [
        ([TransportRefused("the server does not offer TLS")], TlsRequiredError),
        ([nats.errors.AuthorizationError()], AuthError),
        ([nats.errors.Error("nats: 'authorization violation'")], AuthError),
        ([ssl.SSLCertVerificationError("bad")], AuthError),
        ([ConnectionRefusedError(111, "Connection refused")], NatsUnavailableError),
        ([TimeoutError()], NatsUnavailableError),
        ([], NatsUnavailableError),
        ([type("ErrInvalidSeed", (Exception,), {})()], ConfigError),
    ],
    ids=lambda x: type(x).__name__,
)
def test_first_connect_failures_are_classified(errors: list[BaseException], cls: type) -> None:
    out = classify_connect_failure(errors, "nats://127.0.0.1:1")
    assert type(out) is cls
    assert "nats://127.0.0.1:1" in str(out) or cls in (ConfigError, TlsRequiredError)
