"""What the review UI needs of the server that mounts it: a narrow interface, so the UI never imports the server.

``tracemill serve`` passes itself; anything with a store to open, an authenticator and a session store could
host the UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tracemill.collector.feedback.reviewers import Authenticator
    from tracemill.collector.store.store import Store
    from tracemill.ui.sessions import SessionStore

__all__ = ["UiHost"]


class StoreOpener(Protocol):
    """Opens the store on demand (the server's link reopens it after it was unavailable)."""

    def get(self) -> Store: ...


class UiHost(Protocol):
    """The server as the UI sees it."""

    @property
    def link(self) -> StoreOpener: ...

    @property
    def authenticator(self) -> Authenticator:
        """Who a token stands for: the admin token and the reviewers' (no sign-in when none is set)."""
        ...

    @property
    def sessions(self) -> SessionStore | None:
        """The UI's sign-in sessions; None when the server takes no tokens."""
        ...
