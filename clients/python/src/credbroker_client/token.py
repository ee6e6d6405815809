"""The bearer token a client presents to the broker (``authorization: Bearer <token>``)."""
from __future__ import annotations

import os
import threading
from typing import Optional, Protocol, Tuple

from .errors import unauthenticated


class CallerToken(Protocol):
    """Something that yields the token to send now (raises BrokerError UNAUTHENTICATED if not)."""

    def token(self) -> str:
        ...


class StaticToken:
    """A fixed token (static tokens for development)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class TokenFile:
    """The token in `path` (whitespace trimmed), read again whenever the file changed.

    In Kubernetes the projected service-account token is replaced by the kubelet (an atomic swap
    of the ``..data`` link) before it expires; a change of the file's inode, size or modification
    time makes the next call read it again, so a long-lived client never presents a stale token.
    An unreadable or empty file: BrokerError(UNAUTHENTICATED) naming the path, never the old token.
    Thread-safe.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[int, int, int]] = None
        self._token = ""

    @property
    def path(self) -> str:
        return self._path

    def token(self) -> str:
        try:
            st = os.stat(self._path)
        except OSError as err:
            raise unauthenticated(
                f"cannot read the token file {self._path}: {err.strerror}") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if stamp == self._stamp and self._token:
                return self._token
            try:
                with open(self._path, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as err:
                raise unauthenticated(
                    f"cannot read the token file {self._path}: {err.strerror}") from None
            except UnicodeDecodeError:
                raise unauthenticated(f"the token file {self._path} is not UTF-8 text") from None
            if not token:
                raise unauthenticated(f"the token file {self._path} is empty")
            self._stamp = stamp
            self._token = token
            return token

    def __repr__(self) -> str:
        return f"TokenFile({self._path!r})"
