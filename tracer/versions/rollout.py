"""``tracemill.rollout``: put a run in the control or the candidate arm of a rollout, behind a kill switch.

The arm is sticky per key (a hash of the rollout's name and the key against ``share``) and random
without a key. The rollout's state (``running``, ``halted``, ``promoted``) comes from the server
(``GET /api/rollouts/NAME/state``) or, when none answers, from the state file that the process halting
it writes next to the store (``rollouts/NAME.json`` in the data directory), and is cached for at most
:data:`STATE_TTL_S` seconds. A halted rollout gives ``control`` to every key; a promoted one
``candidate``. Nothing here raises into the caller: on any trouble the answer is ``control``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Literal

from opentelemetry import trace

from tracemill import config
from tracemill.tracer.logs import log_once

__all__ = [
    "ARM",
    "NAME",
    "STATE_TTL_S",
    "Arm",
    "RolloutState",
    "assign",
    "clear_state_cache",
    "rollout",
    "set_state_reader",
    "state_file",
]

Arm = Literal["control", "candidate"]
RolloutState = Literal["running", "halted", "promoted"]
NAME = "tracemill.rollout.name"
ARM = "tracemill.rollout.arm"
STATE_TTL_S = 30.0
"""How long a rollout's state is cached in a process: a halt reaches every process within this."""
STATES: tuple[RolloutState, ...] = ("running", "halted", "promoted")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_PROBE_TIMEOUT_S = 0.5

StateReader = Callable[[str], "RolloutState | None"]


def state_file(name: str, env: Mapping[str, str] | None = None) -> str:
    """Where the state of rollout ``name`` is mirrored for processes on this machine."""
    from tracemill.paths import data_dir

    return os.path.join(data_dir(env), "rollouts", f"{name}.json")


def _server_url(env: Mapping[str, str]) -> str:
    from tracemill.tracer.config import local_server_url

    return ((config.SERVER.raw(env) or "") or local_server_url(env)).rstrip("/")


def _from_server(name: str, env: Mapping[str, str]) -> RolloutState | None:
    url = f"{_server_url(env)}/api/rollouts/{urllib.parse.quote(name)}/state"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = config.TOKEN.raw(env)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT_S) as response:
            state = json.loads(response.read()).get("state")
    except Exception:
        return None
    return state if state in STATES else None


def _from_file(name: str, env: Mapping[str, str]) -> RolloutState | None:
    try:
        with open(state_file(name, env), encoding="utf-8") as f:
            state = json.load(f).get("state")
    except (OSError, ValueError, AttributeError):
        return None
    return state if state in STATES else None


def default_reader(name: str) -> RolloutState | None:
    """The server's answer, else the state file's; None when neither knows the rollout."""
    env = os.environ
    return _from_server(name, env) or _from_file(name, env)


class _StateCache:
    def __init__(self) -> None:
        self.reader: StateReader = default_reader
        self._known: dict[str, tuple[float, RolloutState]] = {}
        self._lock = threading.Lock()

    def state(self, name: str) -> RolloutState:
        now = time.monotonic()
        with self._lock:
            cached = self._known.get(name)
        if cached is not None and now - cached[0] < STATE_TTL_S:
            return cached[1]
        fresh = self.reader(name)
        # A rollout nobody has heard of runs; one that cannot be read now keeps its last known state.
        state: RolloutState = fresh or (cached[1] if cached is not None else "running")
        with self._lock:
            self._known[name] = (now, state)
        return state

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


_CACHE = _StateCache()


def set_state_reader(reader: StateReader | None) -> None:
    """Read rollout states with ``reader`` (None: the default, server then state file); clears the cache."""
    _CACHE.reader = reader or default_reader
    _CACHE.clear()


def clear_state_cache() -> None:
    """Forget cached states (the next call reads them again)."""
    _CACHE.clear()


def assign(name: str, share: float, key: str | None) -> Arm:
    """The arm of a running rollout: a stable hash of (name, key) below ``share`` is the candidate."""
    if key is None:
        point = random.random()
    else:
        digest = hashlib.sha256(f"{name}\x00{key}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64
    return "candidate" if point < share else "control"


def _valid(name: object, share: object) -> bool:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        log_once(f"rollout.name:{name!r}", "tracemill: rollout name must be 1-128 of A-Z a-z 0-9 _ . : - "
                 "(got %r); using control", name)
        return False
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        log_once(f"rollout.share:{name}", "tracemill: rollout %s: share must be a number in [0, 1] (got %r); "
                 "using control", name, share)
        return False
    return True


def rollout(name: str, *, share: float, key: str | None = None) -> Arm:
    """``"control"`` or ``"candidate"`` for this run of rollout ``name``, recorded on the current span.

    ``share`` is the candidate's share of keys (0 to 1); ``key`` (a user or conversation id) keeps
    one key in one arm. Once the rollout is halted every process answers ``control`` (within
    :data:`STATE_TTL_S`); once promoted, ``candidate``. Never raises: bad arguments or any failure
    answer ``control`` and log once.
    """
    arm: Arm = "control"
    try:
        if _valid(name, share):
            state = _CACHE.state(name)
            if state == "promoted":
                arm = "candidate"
            elif state == "running":
                arm = assign(name, float(share), None if key is None else str(key))
            span = trace.get_current_span()
            span.set_attribute(NAME, name)
            span.set_attribute(ARM, arm)
    except Exception:
        log_once("rollout", "tracemill: rollout %r failed; using control", name)
        arm = "control"
    return arm
