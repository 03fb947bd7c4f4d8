"""The review UI's sign-in sessions: random ids kept by the server, which expire and which logout revokes.

The browser's cookie holds only a session id (256 random bits), never the token or anything derived from
it, so a cookie that leaks stops working when its session ends: at logout, after the session TTL
(``session_ttl_s`` in :mod:`tracemill.config`), when the server restarts, or when the token it was opened
with is rotated out of the reviewers file.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tracemill.collector.feedback.reviewers import Identity

__all__ = ["MAX_SESSIONS", "Session", "SessionStore"]

MAX_SESSIONS = 10_000
"""Sessions kept at most; past it the oldest are dropped (their reviewers sign in again)."""


@dataclass(frozen=True)
class Session:
    identity: Identity
    token_digest: bytes
    expires_at: float


class SessionStore:
    """Open sessions by id, in memory; ``still_valid`` says whether a session's token still stands."""

    def __init__(self, ttl_s: float, *, still_valid: Callable[[Identity, bytes], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._still_valid = still_valid
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, identity: Identity, token_digest: bytes) -> tuple[str, Session]:
        """A new session for ``identity``: its id (the cookie's value) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(identity, token_digest, self._clock() + self.ttl_s)
        with self._lock:
            self._drop_expired()
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, or None (unknown, expired, revoked, or its token rotated out)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires_at <= self._clock() or not self._still_valid(session.identity, session.token_digest):
                del self._sessions[session_id]
                return None
            return session

    def revoke(self, session_id: str) -> bool:
        """End a session (logout); whether there was one."""
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def _drop_expired(self) -> None:
        now = self._clock()
        for session_id in [sid for sid, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[session_id]
