"""A new Gradio session renders no block config until someone reads it, and then reads as Gradio's own."""

from __future__ import annotations

import pytest
from gradio import state_holder
from gradio.blocks import BlocksConfig

import app
from ui import sessions


@pytest.fixture(scope="module")
def demo():
    return app.build_demo()


@pytest.fixture
def renders(monkeypatch):
    """Count the block configs rendered."""
    count = {"n": 0}
    original = BlocksConfig.config_for_block

    def counted(*args, **kwargs):
        count["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(BlocksConfig, "config_for_block", staticmethod(counted))
    return count


def test_a_new_session_renders_no_config_until_read(demo, renders):
    holder = state_holder.StateHolder()
    holder.set_blocks(demo)
    sessions.install()
    session = holder["api-call-without-a-session"]  # what Gradio does for every /call without a session hash
    assert isinstance(session, sessions.LazySessionState)
    assert renders["n"] == 0
    a_block = next(iter(session.blocks_config.blocks))
    assert session.config_values[a_block]["id"] == a_block
    assert renders["n"] == 1


def test_a_lazy_session_equals_gradios_own(demo):
    ours, gradios = sessions.LazySessionState(demo), sessions.LazySessionState.__mro__[1](demo)
    assert sorted(vars(ours)) == sorted(vars(gradios))  # a Gradio upgrade that adds state fails here
    assert len(ours.config_values) == len(gradios.config_values)
    assert dict(ours.config_values.items()) == gradios.config_values
    assert list(ours.components) == list(gradios.components)  # what a deep link saves, in the same order


def test_an_events_value_lands_in_the_config_either_way(demo):
    ours, gradios = sessions.LazySessionState(demo), sessions.LazySessionState.__mro__[1](demo)
    textbox = next(key for key, block in demo.blocks.items() if type(block).__name__ == "Textbox")
    for session in (ours, gradios):
        session._update_value_in_config(textbox, "typed by the learner")
    assert ours.config_values[textbox]["props"]["value"] == "typed by the learner"
    assert list(ours.components) == list(gradios.components)
