"""What the review UI needs of the server that mounts it: a narrow interface, so the UI never imports the server.

``tracemill serve`` passes itself; anything with a store to open and a token setting could host the UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["UiHost"]


class StoreOpener(Protocol):
    """Opens the store on demand (the server's link reopens it after it was unavailable)."""

    def get(self) -> Store: ...


class TokenSettings(Protocol):
    """The one setting the UI reads: the bearer token reviewers sign in with (None: no sign-in)."""

    @property
    def token(self) -> str | None: ...


class UiHost(Protocol):
    """The server as the UI sees it."""

    @property
    def link(self) -> StoreOpener: ...

    @property
    def settings(self) -> TokenSettings: ...
