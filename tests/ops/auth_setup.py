"""Server configurations and credentials for the authentication tests.

Everything is generated in the test: passwords, tokens, NKeys (with the ``nkeys``
package), operator/account/user JWTs signed with those NKeys (real JWT/credentials
auth, the server in operator mode with a memory resolver), and a TLS CA with server and
client certificates (``trustme``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import nkeys
import trustme


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class KeyPair:
    """An NKey pair: public key and seed."""

    public: str
    seed: bytes

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature of `data`."""
        return nkeys.from_seed(self.seed).sign(data)


def new_keypair(prefix: int) -> KeyPair:
    """A fresh NKey pair of the given kind (``nkeys.PREFIX_BYTE_USER`` ...)."""
    import nacl.signing

    raw = bytes(nacl.signing.SigningKey.generate())
    seed = nkeys.encode_seed(raw, prefix)
    kp = nkeys.from_seed(bytearray(seed))
    return KeyPair(public=kp.public_key.decode(), seed=seed)


def encode_jwt(claims: dict[str, object], issuer: KeyPair) -> str:
    """A NATS JWT (ed25519-nkey) of `claims` signed by `issuer`."""
    claims = dict(claims)
    claims.setdefault("iat", int(time.time()))
    claims["iss"] = issuer.public
    claims["jti"] = ""
    body = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    claims["jti"] = base64.b32encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{_b64(issuer.sign(signing_input))}"


@dataclass
class OperatorSetup:
    """Operator, system account, account and user JWTs plus the user's creds file text."""

    server_config: str
    creds: str
    user_seed: bytes


def operator_setup(base: Path) -> OperatorSetup:
    """JWT auth: an operator, a system account, an account with JetStream and one user."""
    op = new_keypair(nkeys.PREFIX_BYTE_OPERATOR)
    sys_acc = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    acc = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    user = new_keypair(nkeys.PREFIX_BYTE_USER)
    op_jwt = encode_jwt(
        {"sub": op.public, "name": "aether-op", "nats": {"type": "operator", "version": 2}}, op
    )
    unlimited = {"subs": -1, "conn": -1, "leaf": -1, "imports": -1, "exports": -1}
    unlimited |= {"data": -1, "payload": -1, "wildcards": True}
    js = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
    sys_jwt = encode_jwt(
        {
            "sub": sys_acc.public,
            "name": "SYS",
            "nats": {"type": "account", "version": 2, "limits": unlimited},
        },
        op,
    )
    acc_jwt = encode_jwt(
        {
            "sub": acc.public,
            "name": "AETHER",
            "nats": {"type": "account", "version": 2, "limits": unlimited | js},
        },
        op,
    )
    user_jwt = encode_jwt(
        {
            "sub": user.public,
            "name": "app",
            "nats": {
                "type": "user",
                "version": 2,
                "pub": {},
                "sub": {},
                "subs": -1,
                "data": -1,
                "payload": -1,
            },
        },
        acc,
    )
    op_file = base / "operator.jwt"
    op_file.write_text(op_jwt)
    config = "\n".join(
        [
            f'operator: "{op_file}"',
            f"system_account: {sys_acc.public}",
            "resolver: MEMORY",
            "resolver_preload: {",
            f"  {sys_acc.public}: {sys_jwt}",
            f"  {acc.public}: {acc_jwt}",
            "}",
        ]
    )
    creds = (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user.seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )
    return OperatorSetup(server_config=config, creds=creds, user_seed=user.seed)


@dataclass
class TlsFiles:
    """A test CA, the server's certificate and key, and a client certificate and key."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def tls_files(base: Path, server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """Certificates generated for this test run (trustme): the server's for `server_names`."""
    ca = trustme.CA()
    other = trustme.CA()
    server = ca.issue_cert(*server_names)
    client = ca.issue_cert("aether-client@example.com")
    files = TlsFiles(
        ca=base / "ca.pem",
        server_cert=base / "server.pem",
        server_key=base / "server.key",
        client_cert=base / "client.pem",
        client_key=base / "client.key",
        other_ca=base / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    other.cert_pem.write_to_path(str(files.other_ca))
    server.private_key_pem.write_to_path(str(files.server_key))
    for i, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files.server_cert), append=i > 0)
    client.private_key_pem.write_to_path(str(files.client_key))
    for i, blob in enumerate(client.cert_chain_pems):
        blob.write_to_path(str(files.client_cert), append=i > 0)
    return files


def tls_config(files: TlsFiles, *, verify: bool) -> str:
    """The server's ``tls {}`` block; `verify` requires client certificates (mTLS)."""
    lines = [
        "tls {",
        f'  cert_file: "{files.server_cert}"',
        f'  key_file: "{files.server_key}"',
        f'  ca_file: "{files.ca}"',
        f"  verify: {'true' if verify else 'false'}",
        "  timeout: 2",
        "}",
    ]
    return "\n".join(lines)
