"""What the routes of ``tracemill serve`` need of the server that mounts them.

The server (:mod:`tracemill.collector.server.server`) builds its routes from these modules, so they name what
they use here instead of importing the server back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tracemill.collector.feedback.reviewers import Authenticator
    from tracemill.collector.server.settings import ServerSettings
    from tracemill.collector.store.connection import StoreLink

__all__ = ["ServerHost"]


class ServerHost(Protocol):
    """The running server as the JSON API sees it: its settings, its store link, its health and status."""

    @property
    def settings(self) -> ServerSettings: ...

    @property
    def link(self) -> StoreLink: ...

    @property
    def authenticator(self) -> Authenticator: ...

    def health(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...
