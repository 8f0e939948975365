import threading

import pytest
import torch

from playground import activations as A
from playground.hooks import SharedLock, model_lock, temporary_hooks, weights_token
from playground.models import build


def _inside_together(enter, n: int = 2, timeout: float = 5.0) -> bool:
    """Whether ``n`` threads can all be inside ``enter()`` at the same moment."""
    barrier = threading.Barrier(n, timeout=timeout)
    met = []

    def run():
        with enter():
            try:
                barrier.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(met) == n


def test_shared_holders_run_together_and_an_exclusive_one_alone():
    lock = SharedLock()
    assert _inside_together(lock.shared)
    assert not _inside_together(lock.exclusive, timeout=0.5)


def test_an_exclusive_holder_waits_for_shared_ones_and_goes_before_new_ones():
    lock, order = SharedLock(), []
    first_in, release = threading.Event(), threading.Event()

    def reader(name, hold=None):
        with lock.shared():
            order.append(name)
            if hold:
                first_in.set()
                hold.wait()

    def writer():
        with lock.exclusive():
            order.append("writer")

    threading.Thread(target=reader, args=("reader 1", release)).start()
    first_in.wait()
    w = threading.Thread(target=writer)
    w.start()
    while not lock._queued:  # the writer is waiting for reader 1
        pass
    late = threading.Thread(target=reader, args=("reader 2",))
    late.start()
    release.set()
    w.join()
    late.join()
    assert order == ["reader 1", "writer", "reader 2"]


def test_the_lock_is_reentrant_and_says_who_holds_it():
    lock = SharedLock()
    assert not lock.held()
    with lock.exclusive(), lock.exclusive(), lock.shared():
        assert lock.held()
    with lock.shared(), lock.shared():
        assert lock.held()
        with pytest.raises(RuntimeError):
            with lock.exclusive():
                pass
    assert not lock.held()


def test_captures_from_one_shared_model_run_side_by_side():
    """Our hooks fire only for their own thread, so two users' captures of an eval-mode model need not wait."""
    model = build("alexnet_compact", num_classes=4).eval()
    assert _inside_together(lambda: temporary_hooks(model, {"features.0": lambda *a: None}))


def test_a_model_in_training_mode_is_switched_only_by_one_holder_at_a_time():
    model = build("alexnet_compact", num_classes=4).train()
    assert not _inside_together(lambda: temporary_hooks(model, {"features.0": lambda *a: None}), timeout=0.5)
    assert model.training and not model_lock(model).held()


def test_the_weights_token_follows_new_weights_and_tells_models_apart():
    a, b = build("alexnet_compact", num_classes=4), build("alexnet_compact", num_classes=4)
    token = weights_token(a)
    assert weights_token(a) == token and weights_token(b) != token
    a.load_state_dict(b.state_dict())
    assert weights_token(a) != token


def test_look_keeps_one_pass_per_photo_and_weights(monkeypatch):
    from PIL import Image

    photo = Image.new("RGB", (64, 48), (200, 30, 30))
    model = build("alexnet_compact", num_classes=4).eval()
    passes = []
    model.register_forward_pre_hook(lambda *args: passes.append(1))
    first = A.look(model, photo, key=("photo", 1))
    again = A.look(model, photo, key=("photo", 1))
    assert again is first and len(passes) == 1
    with torch.no_grad():
        torch.testing.assert_close(first.logits, model(A.preprocess(photo)))
    assert set(first.activations) == set(A.layer_names(model))
    A.look(model, photo)  # no key: not kept
    A.look(model, photo)
    assert len(passes) == 4  # the first look, the reference pass, and each keyless look
    model.load_state_dict(build("alexnet_compact", num_classes=4).state_dict())
    fresh = A.look(model, photo, key=("photo", 1))
    assert fresh is not first and not torch.equal(fresh.logits, first.logits)
