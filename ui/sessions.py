"""Gradio's per-session state, made cheap to create.

Gradio 6 gives every new session a ``SessionState`` whose constructor renders the config of every block on
the page (``BlocksConfig.config_for_block``: ``inspect.signature`` and a walk of each block's arguments) so
that a deep link can later replay the session. It does so on the server's event loop, before the event runs.
A browser pays that once per page; a script using the HTTP API (``/gradio_api/call/<name>``, no session
sent) gets a session per call and pays it on every call. For this app's page that is ~17 ms of the event
loop per call alone, and under a class of 40 such scripts on 2 cores it doubled every event's p95
(bench.load ``--route call``).

Here each block's config is rendered the first time someone reads it instead (Gradio updates a block's
entry when an event sets its value, and the deep link reads them all). The version range in
requirements.txt pins the constructor this mirrors; ``tests/test_sessions.py`` checks that a session made
here equals one made by Gradio's own constructor.
"""

from __future__ import annotations

import copy
import os

from gradio import state_holder


class _ConfigOnDemand(dict):
    """``SessionState.config_values``: block id -> that block's config, each rendered when first read."""

    def __init__(self, blocks_config, ids):
        super().__init__()
        self._blocks_config = blocks_config
        self._pending = dict.fromkeys(ids)  # ordered as Gradio's own comprehension orders them

    def _render(self, key) -> None:
        if key in self._pending:
            del self._pending[key]
            block = self._blocks_config.blocks[key]
            dict.__setitem__(self, key, self._blocks_config.config_for_block(key, [], block))

    def _render_all(self) -> None:
        for key in list(self._pending):
            self._render(key)
        # Gradio's dict holds the blocks in page order; a key set before its turn came is moved back to it
        order = list(self._blocks_config.blocks)
        rank = {key: i for i, key in enumerate(order)}
        items = sorted(dict.items(self), key=lambda item: rank.get(item[0], len(order)))
        dict.clear(self)
        dict.update(self, items)

    def __getitem__(self, key):
        self._render(key)
        return dict.__getitem__(self, key)

    def __setitem__(self, key, value):
        self._pending.pop(key, None)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        if self._pending.pop(key, "absent") == "absent":
            dict.__delitem__(self, key)

    def __contains__(self, key):
        return key in self._pending or dict.__contains__(self, key)

    def __len__(self):
        return len(self._pending) + dict.__len__(self)

    def get(self, key, default=None):
        self._render(key)
        return dict.get(self, key, default)

    def __iter__(self):
        self._render_all()
        return dict.__iter__(self)

    def keys(self):
        self._render_all()
        return dict.keys(self)

    def values(self):
        self._render_all()
        return dict.values(self)

    def items(self):
        self._render_all()
        return dict.items(self)

    def __eq__(self, other):
        self._render_all()
        return dict.__eq__(self, other)

    __hash__ = None

    def __repr__(self):
        self._render_all()
        return dict.__repr__(self)


class LazySessionState(state_holder.SessionState):
    """Gradio's ``SessionState``, whose block configs are rendered on demand rather than all at creation."""

    def __init__(self, blocks):  # mirrors state_holder.SessionState.__init__ (Gradio 6), but for the configs
        self.blocks_config = copy.copy(blocks.default_config)
        self.config_values = _ConfigOnDemand(
            self.blocks_config, [key for key in self.blocks_config.blocks if key in blocks.blocks]
        )
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600


def install() -> None:
    """Make every session Gradio creates from now on a ``LazySessionState`` (idempotent)."""
    state_holder.SessionState = LazySessionState
