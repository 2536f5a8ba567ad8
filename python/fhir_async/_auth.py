"""Who the client is: a bearer token (``TokenSource``) or SMART Backend
Services (``BackendServices``), turned into the settings the native client
takes. The tokens themselves are fetched, renewed and kept in Rust."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Union

from .errors import UsageError

TokenSource = Union[str, Callable[[], str], None]
"""A bearer token: none, a fixed string, or a callable asked again after a 401."""


@dataclass(frozen=True)
class BackendServices:
    """SMART Backend Services (``client_credentials``):
    ``Client(base, auth=BackendServices("client-1", key="key.pem",
    scope="system/*.read"))``. ``key`` is the path of a PEM file (PKCS#8 RSA
    or P-384 EC), of a private JWK or JWKS (JSON), a JWK / JWKS dict, or the
    PEM text itself (a str starting ``-----BEGIN``, or bytes); ``key_env``
    names an environment variable holding the PEM or JWK / JWKS text instead.
    RS384 or ES384 follows from the key, and each token request carries an
    assertion signed with it. A symmetric client gives ``client_secret``
    instead of a key (``client_secret_basic``: the id and secret in
    ``Authorization: Basic`` of the token request, nothing signed), or
    ``client_secret_env`` (an environment variable's name) or
    ``client_secret_file`` (a file holding it; surrounding whitespace is
    dropped). The env and file forms are read where the ``Client`` is built,
    so a task of ``fhir_async.dask`` carries their names, never the secret
    (inline secrets and key material are refused there).
    ``token_url`` is found by discovery (``.well-known/smart-configuration``)
    when None; ``kid`` picks the key of a JWKS and names it in the assertion.
    Tokens are renewed before they expire and after a 401; a refusal raises
    ``AuthError`` with the server's ``error`` and ``error_description``.
    Neither the tokens, the key nor the secret appear in a repr, an error or
    the saved state. ``_clock_offset_ms`` is for tests only: the client's
    clock (assertions' ``iat``/``exp``) is this far off."""

    client_id: str
    key: Union[str, "os.PathLike[str]", Mapping[str, Any], bytes, None] = None
    scope: str = "system/*.read"
    token_url: Optional[str] = None
    kid: Optional[str] = None
    client_secret: Optional[str] = None
    client_secret_env: Optional[str] = None
    client_secret_file: Union[str, "os.PathLike[str]", None] = None
    key_env: Optional[str] = None
    _clock_offset_ms: int = 0

    def __post_init__(self) -> None:
        given = [
            name
            for name in ("key", "key_env", "client_secret", "client_secret_env", "client_secret_file")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise UsageError(
                "BackendServices takes one of key (PEM/JWK path, JWK dict or PEM text), key_env, "
                f"client_secret, client_secret_env or client_secret_file; got {', '.join(given) or 'none'}"
            )
        if self.client_secret is not None and (not isinstance(self.client_secret, str) or not self.client_secret):
            raise UsageError("client_secret must be a non-empty str")
        for name in ("client_secret_env", "key_env"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UsageError(f"{name} must be the name of an environment variable (a non-empty str)")

    @property
    def inline_credential(self) -> Optional[str]:
        """Which field holds a secret or key material itself (``client_secret``,
        ``key``), or None when only names travel (a key file's path, an
        environment variable's name, a secret file's path)."""
        if self.client_secret is not None:
            return "client_secret"
        if isinstance(self.key, (Mapping, bytes, bytearray)) or _is_pem(self.key):
            return "key"
        return None

    def __repr__(self) -> str:
        if self.client_secret is not None:
            cred = "client_secret='***'"
        elif self.client_secret_env is not None:
            cred = f"client_secret_env={self.client_secret_env!r}"
        elif self.client_secret_file is not None:
            cred = f"client_secret_file={os.fspath(self.client_secret_file)!r}"
        elif self.key_env is not None:
            cred = f"key_env={self.key_env!r}"
        elif self.inline_credential == "key":
            cred = f"key={'<jwk>' if isinstance(self.key, Mapping) else '<pem>'!r}"
        else:
            cred = f"key={os.fspath(self.key)!r}"  # type: ignore[arg-type]
        return f"BackendServices(client_id={self.client_id!r}, {cred}, scope={self.scope!r})"

    def _native(self) -> Dict[str, Any]:
        """The settings the native client takes; the env and file forms are read here, now."""
        out: Dict[str, Any] = {
            "client_id": self.client_id,
            "scope": self.scope,
            "token_url": self.token_url,
            "kid": self.kid,
            "clock_offset_ms": self._clock_offset_ms,
        }
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
        elif self.client_secret_env is not None:
            out["client_secret"] = _from_env(self.client_secret_env, "the client secret")
        elif self.client_secret_file is not None:
            out["client_secret"] = _from_file(self.client_secret_file, "the client secret")
        elif self.key_env is not None:
            text = _from_env(self.key_env, "the private key")
            out["key_jwk" if text.startswith("{") else "key_pem"] = text
        elif isinstance(self.key, Mapping):
            out["key_jwk"] = json.dumps(dict(self.key))
        elif isinstance(self.key, (bytes, bytearray)):
            out["key_pem"] = bytes(self.key).decode("utf-8", "replace")
        elif _is_pem(self.key):
            out["key_pem"] = self.key
        else:
            out["key_path"] = os.fspath(self.key)  # type: ignore[arg-type]
        return out


def _is_pem(key: Any) -> bool:
    return isinstance(key, str) and key.lstrip().startswith("-----BEGIN")


def _from_env(name: str, what: str) -> str:
    """The value of environment variable ``name`` here (a worker's own
    environment); a ``UsageError`` naming the variable (never a value) when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise UsageError(f"the environment variable {name} ({what}) is not set here")
    return value


def _from_file(path: Union[str, "os.PathLike[str]"], what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise UsageError(f"{os.fspath(path)} ({what}) cannot be read here: {e.strerror}") from None
    if not value:
        raise UsageError(f"{os.fspath(path)} ({what}) is empty")
    return value
