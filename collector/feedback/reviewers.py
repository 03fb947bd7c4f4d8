"""Who is writing: reviewer tokens from a file, the identity of a request, and the author it may write as.

``tracemill serve --reviewers FILE`` (the ``reviewers`` setting of :mod:`tracemill.config`) names the
reviewers, one line ``author token`` each (blank lines and ``#`` comments are skipped). The file is read again
when it changes (its modification time or size), so a token is rotated by editing the file: the old token stops
working at the next request, and so do UI sessions opened with it. ``--token`` stays the admin token.

The server, not the request body, says who wrote a row:

- a reviewer's token makes the request that reviewer: a feedback item without ``author`` gets theirs, and
  one naming somebody else is refused (403);
- the admin writes as ``admin``, or for another author only by saying so with ``"as_author": NAME``, and
  the row records that the admin wrote it (``written_by``);
- a server with no tokens authenticates nobody: the body's author is taken as given, and recorded as such.

Author names are normalised (Unicode NFKC, whitespace collapsed, case folded) before they key a row, so
``Alice`` and ``alice `` are one author.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tracemill import config
from tracemill.errors import ConfigError, ForbiddenError

__all__ = ["ADMIN", "IDENTITY_KEY", "MIN_TOKEN_CHARS", "OPEN", "PUBLIC_KEY", "Authenticator", "Identity",
           "ReviewerFile", "apply_identity", "identity_of", "normalize_author", "parse_reviewers"]

logger = logging.getLogger("tracemill.server")

IDENTITY_KEY = "tracemill.identity"
"""Request scope key of the request's :class:`Identity` (set by the bearer check or the UI's session)."""
PUBLIC_KEY = "tracemill.public"
"""Scope key set (by the UI guard) on requests that need no token: the sign-in page and static files."""

ADMIN = "admin"
"""The author name of the admin token's own writes."""

MIN_TOKEN_CHARS = 16
"""Shortest reviewer token accepted: a token is a password that is never typed twice."""


def normalize_author(name: str) -> str:
    """The form an author name keys rows in: NFKC, inner whitespace collapsed to one space, case folded."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


@dataclass(frozen=True)
class Identity:
    """Who sent a request: a reviewer (``author`` set), the admin, or nobody in particular (``open``)."""

    role: Literal["reviewer", "admin", "open"]
    author: str | None = None

    @property
    def written_by(self) -> str:
        """What the row's ``WrittenBy`` records: the authenticated name, '' when nobody was authenticated."""
        if self.role == "reviewer":
            return self.author or ""
        return ADMIN if self.role == "admin" else ""

    def to_dict(self) -> dict[str, Any]:
        """What ``GET /api/identity`` answers."""
        return {"role": self.role, "author": self.written_by or None}


OPEN = Identity("open")


def identity_of(scope: Mapping[str, Any]) -> Identity:
    """Who sent the request, as the bearer check or the UI session said (nobody in particular without tokens)."""
    found = scope.get(IDENTITY_KEY)
    return found if isinstance(found, Identity) else OPEN


def _digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


class ReviewerFile:
    """The reviewers file, read again whenever it changes; tokens are kept only as digests."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_digest: dict[bytes, str] = {}
        self._load(initial=True)

    def authenticate(self, token: bytes) -> str | None:
        """The (normalised) author whose token this is, or None."""
        self._refresh()
        wanted = _digest(token)
        found = None
        for digest, author in self._by_digest.items():  # every entry compared: the time says nothing
            if hmac.compare_digest(digest, wanted):
                found = author
        return found

    def holds(self, author: str, token_digest: bytes) -> bool:
        """Whether ``author`` still has the token with this digest (a UI session ends when it is rotated)."""
        self._refresh()
        return self._by_digest.get(token_digest) == author

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            logger.error("cannot read the reviewers file %s (%s); keeping the reviewers read before", self.path, exc)
            return
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            self._load(initial=False)

    def _load(self, *, initial: bool) -> None:
        with self._lock:
            try:
                stat = self.path.stat()
                entries = parse_reviewers(self.path.read_text(encoding="utf-8"), str(self.path))
            except (OSError, UnicodeDecodeError, ConfigError) as exc:
                message = (str(exc) if isinstance(exc, ConfigError)
                           else f"cannot read the reviewers file {self.path}: {exc}")
                if initial:
                    raise ConfigError(f"{message}; fix --reviewers ({config.REVIEWERS.name})") from None
                logger.error("%s; keeping the reviewers read before", message)
                return
            self._by_digest = {_digest(token): author for author, token in entries.items()}
            self._stamp = (stat.st_mtime_ns, stat.st_size)
            if not initial:
                logger.info("re-read the reviewers file %s: %d reviewers", self.path, len(entries))


def parse_reviewers(text: str, where: str) -> dict[str, str]:
    """``{author: token}`` from the file's lines; an error names the line."""
    entries: dict[str, str] = {}
    tokens: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ConfigError(f"{where}: line {number} is not 'author token'")
        token, author = parts[-1], normalize_author(" ".join(parts[:-1]))
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"{where}: line {number}: the token of {author!r} is shorter than {MIN_TOKEN_CHARS} "
                              "characters; make one with: python -c 'import secrets; print(secrets.token_urlsafe())'")
        if author == ADMIN:
            raise ConfigError(f"{where}: line {number}: 'admin' is the admin token's name; choose another author")
        if author in entries:
            raise ConfigError(f"{where}: line {number}: {author!r} is listed twice; give each reviewer one line")
        if token in tokens:
            raise ConfigError(f"{where}: line {number}: the token of {author!r} is another reviewer's too")
        entries[author] = token
        tokens.add(token)
    return entries


def apply_identity(items: list[Any], identity: Identity, *, reviewers: bool) -> list[Any]:
    """The items with the author the request may write as, or :class:`ForbiddenError` (403) for one naming
    somebody else. ``as_author`` (the admin's explicit field) is consumed here. Without ``reviewers`` the
    admin token is the only token, shared by whoever writes, so the body's author stands (recorded as
    written by the admin token)."""
    out: list[Any] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            out.append(item)  # the write path refuses it with the reason
            continue
        item = dict(item)
        as_author = item.pop("as_author", None)
        given = item.get("author")
        named = normalize_author(given) if isinstance(given, str) and given.strip() else None
        if identity.role == "reviewer":
            if as_author is not None:
                raise ForbiddenError(f"item {index}: only the admin token may write for another author (as_author)")
            if named is not None and named != identity.author:
                raise ForbiddenError(f"item {index}: you are signed in as {identity.author!r}, and may not write "
                                     f"feedback as {given!r}; leave author out, or use that reviewer's token")
            item["author"] = identity.author
        elif identity.role == "admin":
            shared = not reviewers and as_author is None and named is not None
            item["author"] = named if shared else _admin_author(index, as_author, named, given)
        elif as_author is not None:
            raise ConfigError(f"item {index}: as_author is for the admin token of a server with reviewers; "
                              "give author instead")
        out.append(item)
    return out


def _admin_author(index: int, as_author: Any, named: str | None, given: Any) -> str:
    if as_author is None:
        if named not in (None, ADMIN):
            raise ForbiddenError(
                f"item {index}: the admin token writes as 'admin'; to write for {given!r}, send "
                f'"as_author": {given!r} (the row records that the admin wrote it)')
        return ADMIN
    if not isinstance(as_author, str) or not as_author.strip():
        raise ConfigError(f"item {index}: as_author must be an author's name (got {as_author!r})")
    if named is not None and named != normalize_author(as_author):
        raise ConfigError(f"item {index}: author {given!r} and as_author {as_author!r} differ; give one of them")
    return normalize_author(as_author)


class Authenticator:
    """Token → identity for the server: the admin token (``--token``) and the reviewers' tokens."""

    def __init__(self, admin_token: str | None, reviewers: ReviewerFile | None) -> None:
        self._admin = _digest(admin_token) if admin_token else None
        self.reviewers = reviewers

    @property
    def required(self) -> bool:
        """Whether requests must carry a token at all."""
        return self._admin is not None or self.reviewers is not None

    def authenticate(self, token: bytes) -> Identity | None:
        """The identity a bearer token stands for, or None for a wrong token."""
        if not token:
            return None
        admin = self._admin is not None and hmac.compare_digest(_digest(token), self._admin)
        author = self.reviewers.authenticate(token) if self.reviewers is not None else None
        if admin:
            return Identity("admin")
        return Identity("reviewer", author) if author else None

    def still_valid(self, identity: Identity, token_digest: bytes) -> bool:
        """Whether the token a session was opened with still stands for its identity (rotation ends sessions)."""
        if identity.role == "admin":
            return self._admin is not None and hmac.compare_digest(token_digest, self._admin)
        return self.reviewers is not None and identity.author is not None and self.reviewers.holds(
            identity.author, token_digest)

    @staticmethod
    def digest(token: bytes | str) -> bytes:
        return _digest(token)
