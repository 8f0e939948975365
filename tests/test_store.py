import pytest

from playground.checkpoints import ModelInfo
from playground.models import build
from playground.store import ModelStore


def _fake_loader(calls):
    def load(name):
        calls.append(name)
        return build(name, num_classes=3), ModelInfo(name, "untrained", "test", ("a", "b", "c"), "untrained!")

    return load


def test_shared_models_load_once_and_are_read_only():
    calls = []
    store = ModelStore(_fake_loader(calls))
    first, _ = store.get("alexnet_compact", "s1")
    second, _ = store.get("alexnet_compact", "s2")
    assert first is second and calls == ["alexnet_compact"]
    assert not first.training and not any(p.requires_grad for p in first.parameters())


def test_a_sessions_models_are_invisible_to_other_sessions():
    store = ModelStore(_fake_loader([]))
    model = build("alexnet_compact", num_classes=2)
    key = store.add("alice", model, ModelInfo("alexnet_compact", "file", "alice's flowers", ("x", "y")))
    assert key in {v: k for k, v in store.choices("alice")}
    assert key not in {v: k for k, v in store.choices("bob")}
    assert store.get(key, "alice")[0] is model
    with pytest.raises(ValueError, match="not available in this session"):
        store.get(key, "bob")
    store.drop_session("alice")
    with pytest.raises(ValueError):
        store.get(key, "alice")
    assert store.session_count() == 0


def test_each_session_keeps_a_bounded_number_of_models():
    store = ModelStore(_fake_loader([]), per_session=2)
    keys = [
        store.add(
            "s", build("alexnet_compact", num_classes=2), ModelInfo("alexnet_compact", "file", f"m{i}", ("x", "y"))
        )
        for i in range(3)
    ]
    own = [k for _, k in store.choices("s") if k.startswith("mine:")]
    assert own == keys[1:]


def test_all_sessions_together_hold_a_bounded_number_of_models():
    store = ModelStore(_fake_loader([]), per_session=2, total=3)
    info = ModelInfo("alexnet_compact", "file", "m", ("x", "y"))
    models = [build("alexnet_compact", num_classes=2) for _ in range(4)]
    keys = [store.add(session, model, info) for session, model in zip(("a", "a", "b"), models)]
    newest = store.add("c", models[3], info)  # full: the oldest model goes
    with pytest.raises(ValueError):
        store.get(keys[0], "a")
    assert [store.get(key, session)[0] for key, session in ((keys[1], "a"), (keys[2], "b"), (newest, "c"))] == models[
        1:
    ]


@pytest.mark.parametrize("baseline", ["linear", "mlp"])
def test_a_baseline_cannot_join_the_chooser(baseline):
    store = ModelStore(_fake_loader([]))
    info = ModelInfo(baseline, "file", "a pixel classifier", ("x", "y"))
    with pytest.raises(ValueError, match="no convolutional layers"):
        store.add("s", build(baseline, num_classes=2), info)
    assert [key for _, key in store.choices("s")] == ["alexnet", "alexnet2012", "alexnet_compact"]
