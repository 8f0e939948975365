import pytest

from playground.models import build
from playground.serving.store import ModelStore, charge, trained_description
from playground.weights.checkpoints import ModelInfo


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


COMPACT = charge(build("alexnet_compact", num_classes=2))  # what one compact model is charged


def _kept(store, session):
    return [key for _, key in store.choices(session) if key.startswith("mine:")]


def test_models_are_charged_their_weights_twice():
    model = build("alexnet_compact", num_classes=2)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert charge(model) == 2 * weights  # its own weights, and the copy an explanation makes


def test_a_session_keeps_models_within_its_bytes_oldest_first():
    store = ModelStore(_fake_loader([]), per_session=10, session_bytes=2 * COMPACT + 1, total_bytes=100 * COMPACT)
    info = ModelInfo("alexnet_compact", "file", "m", ("x", "y"))
    keys = [store.add("s", build("alexnet_compact", num_classes=2), info) for _ in range(3)]
    assert _kept(store, "s") == keys[1:] and store.held_bytes() == 2 * COMPACT


def test_a_model_larger_than_a_session_may_keep_is_refused_with_a_sentence():
    store = ModelStore(_fake_loader([]), session_bytes=COMPACT // 2)
    with pytest.raises(ValueError, match="too large to keep here"):
        store.add("s", build("alexnet_compact", num_classes=2), ModelInfo("alexnet_compact", "file", "m", ("x", "y")))
    assert store.held_bytes() == 0


def test_when_the_server_is_full_the_heaviest_visitor_makes_room():
    store = ModelStore(_fake_loader([]), per_session=3, session_bytes=3 * COMPACT, total_bytes=4 * COMPACT)
    info = ModelInfo("alexnet_compact", "file", "m", ("x", "y"))
    alice = store.add("alice-session", build("alexnet_compact", num_classes=2), info, visitor="10.0.0.1")
    # One visitor opens many sessions and loads a model in each: it only ever pushes out its own.
    crowd = [
        store.add(f"crowd-{i}", build("alexnet_compact", num_classes=2), info, visitor="10.6.6.6") for i in range(8)
    ]
    assert store.get(alice, "alice-session")  # still there
    assert store.held_bytes() <= 4 * COMPACT
    assert [k for i, k in enumerate(crowd) if _kept(store, f"crowd-{i}")] == crowd[-3:]  # its newest three
    # A newcomer makes room too, at the expense of whoever holds the most: the crowd.
    bob = store.add("bob-session", build("alexnet_compact", num_classes=2), info, visitor="10.0.0.2")
    assert store.get(bob, "bob-session") and store.get(alice, "alice-session")
    assert sum(1 for i in range(8) if _kept(store, f"crowd-{i}")) == 2


@pytest.mark.parametrize("baseline", ["linear", "mlp"])
def test_a_baseline_cannot_join_the_chooser(baseline):
    store = ModelStore(_fake_loader([]))
    info = ModelInfo(baseline, "file", "a pixel classifier", ("x", "y"))
    with pytest.raises(ValueError, match="no convolutional layers"):
        store.add("s", build(baseline, num_classes=2), info)
    assert [key for _, key in store.choices("s")] == ["alexnet", "alexnet2012", "alexnet_compact"]


def _loader(events, *, weight_bytes=None, wait=None):
    """A loader as playground.weights.checkpoints is one: it tells the store the weights' size, then builds."""

    def load(admit):
        model = build("alexnet_compact", num_classes=2)
        admit(weight_bytes or COMPACT // 2)
        events.append("admitted")
        if wait is not None:
            wait.wait(timeout=30)
        events.append("built")
        return model, ModelInfo("alexnet_compact", "file", "m", ("x", "y"))

    return load


def test_a_model_is_charged_before_it_is_built():
    store = ModelStore(_fake_loader([]), session_bytes=COMPACT // 2)
    events = []
    with pytest.raises(ValueError, match="too large to keep here"):
        store.load("s", _loader(events))
    assert events == [] and store.held_bytes() == 0  # refused at admit: nothing after it ran
    store = ModelStore(_fake_loader([]))
    key = store.load("s", _loader(events))
    assert events == ["admitted", "built"] and store.get(key, "s") and store.held_bytes() == COMPACT


def test_loads_in_progress_count_against_the_servers_budget():
    import threading

    store = ModelStore(_fake_loader([]), per_session=3, session_bytes=3 * COMPACT, total_bytes=COMPACT * 3 // 2)
    release, events, keys = threading.Event(), [], []
    first = threading.Thread(target=lambda: keys.append(store.load("a", _loader(events, wait=release), visitor="1")))
    first.start()
    while "admitted" not in events:
        first.join(0.01)
    assert store.held_bytes() == COMPACT  # the load in progress is charged already
    with pytest.raises(ValueError, match="busy loading other models"):
        store.load("b", _loader([]), visitor="2")
    release.set()
    first.join()
    assert store.get(keys[0], "a") and store.held_bytes() == COMPACT  # charged once, when kept


def test_two_models_trained_alike_but_not_the_same_are_told_apart_in_the_chooser():
    store = ModelStore(_fake_loader([]))
    first = trained_description("alexnet_compact", "flowers", 5, "full", 10, 0.72, at=0)
    second = trained_description("alexnet_compact", "flowers", 5, "head", 3, 0.72, at=90)
    for text in (first, second):
        store.add("s", build("alexnet_compact", num_classes=5), ModelInfo("alexnet_compact", "file", text, ("x",) * 5))
    labels = [label for label, key in store.choices("s") if key.startswith("mine:")]
    assert len(set(labels)) == 2
    assert "flowers (5 classes)" in first and "alexnet_compact" in first and "72%" in first
    assert "full" in first and "10 epochs" in first and "00:00 UTC" in first
    assert "head only" in second and "3 epochs" in second and "00:01 UTC" in second


def test_models_described_alike_get_distinct_chooser_labels_in_arrival_order():
    store = ModelStore(_fake_loader([]))
    info = ModelInfo("alexnet_compact", "file", "weights from your file w.safetensors (2 classes)", ("x", "y"))
    keys = [store.add("s", build("alexnet_compact", num_classes=2), info) for _ in range(3)]
    labels = {key: label for label, key in store.choices("s")}
    assert [labels[key] for key in keys] == [
        "yours: weights from your file w.safetensors (2 classes)",
        "yours: weights from your file w.safetensors (2 classes) (2)",
        "yours: weights from your file w.safetensors (2 classes) (3)",
    ]
