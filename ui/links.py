"""A link to any view: the address's query keys say which tab opens and how its controls are set.

``?tab=lab&example=cup&kernel=sobel_x&stride=2`` opens the Convolution lab on the coffee cup with Sobel x at
stride 2. :func:`parse` turns a query into a :class:`View` (the same value a lesson's "Show me" opens) and a
sentence for every value it could not use, so a bad link still opens its tab; :func:`address` makes the
link of a tab's current settings; :func:`values_for` is what the page's controls are sent, for a link and
for "Show me" alike.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import urllib.parse

import gradio as gr

from playground import kernels as K
from playground import models
from playground.config import get_limits
from playground.explain.attributions import METHODS
from playground.training.experiments import PRESETS
from ui.photos import example_paths

EXAMPLES = ("cup", "cat", "astronaut", "rocket", "cameraman")  # the example photos, in their order
TABS = ("lessons", "lab", "architecture", "filters", "activations", "units", "explain", "train", "experiments", "board")
MODEL_TABS = ("architecture", "filters", "activations", "units", "explain")
# Which keys each tab reads, and the field of its layout each sets ("photo": its photo input).
FIELDS: dict[str, dict[str, str]] = {
    "lessons": {"lesson": "chooser"},
    "lab": {
        "example": "photo",
        "kernel": "kernel",
        "stride": "stride",
        "padding": "padding",
        "dilation": "dilation",
        "pool": "pooling",
        "pool_size": "pool_size",
        "pool_stride": "pool_stride",
        "color": "color",
    },  # fmt: skip
    "architecture": {},
    "filters": {"kernel": "kernel"},
    "activations": {"example": "photo", "layer": "layer", "channel": "channel"},
    "units": {"layer": "layer", "channel": "channel", "method": "method"},
    "explain": {"example": "photo", "method": "method", "target": "target"},
    "train": {
        "dataset": "dataset",
        "images": "limit",
        "network": "network",  # the layout's ``model``: "model" is the chooser above the tabs
        "mode": "mode",
        "epochs": "epochs",
        "batch_size": "batch_size",
        "lr": "lr",
        "optimizer": "optimizer",
        "weight_decay": "weight_decay",
    },  # fmt: skip
    "experiments": {
        "preset": "preset",
        "dataset": "dataset",
        "images": "limit",
        "seeds": "seeds",
        "epochs": "epochs",
        "vary": "vary",
        "values": "values",
        "target": "target",
    },  # fmt: skip
    "board": {"class": "code"},  # a class's code: the link a teacher gives the class
}
KEYS = ("tab", "model", *sorted({key for fields in FIELDS.values() for key in fields}))


@dataclasses.dataclass(frozen=True)
class View:
    """A tab and values for its controls, by field name (``model``: the chooser above the tabs; ``photo``:
    an example's number)."""

    tab: str
    values: dict[str, object]


def _whole(text: str, low: int, high: int, key: str) -> int:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{key}={text[:20]!r} is not a number") from None
    if not math.isfinite(number) or not number.is_integer() or not low <= number <= high:
        raise ValueError(f"{key}={text[:20]!r} is not a whole number from {low} to {high}")
    return int(number)


def _kernel(text: str, tab: str) -> dict[str, object]:
    """A preset's name, or rows of numbers (rows split by ";" or new lines, numbers by "," or spaces)."""
    if text in K.KERNELS:
        return {"kernel": text}
    if tab != "lab":
        raise ValueError(f"kernel={text[:20]!r} is not one of the classic kernels")
    rows = text.replace(";", "\n").replace(",", " ")
    try:
        weights = K.parse_kernel(rows)
    except ValueError as error:
        raise ValueError(f"kernel={text[:30]!r}: {error}") from None
    return {"kernel": "custom", "custom_kernel": K.format_kernel(weights)}


def _number(text: str, low: float, high: float, key: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{key}={text[:20]!r} is not a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{key}={text[:20]!r} is not a number from {low:g} to {high:g}")
    return number


def _whole_ranges(tab: str) -> dict[str, tuple[int, int]]:
    limits = get_limits()
    ranges = {
        "stride": (1, limits.max_stride), "padding": (0, limits.max_padding), "dilation": (1, limits.max_dilation),
        "pool_size": (1, limits.max_pool_size), "pool_stride": (1, limits.max_pool_size), "channel": (-1, 4095),
        "lesson": (1, 10), "batch_size": (1, 256), "seeds": (1, 5),
    }  # fmt: skip
    if tab == "train":  # the sliders' own ranges
        ranges |= {"epochs": (1, 50), "images": (100, 10_000)}
    if tab == "experiments":  # 0: the preset's
        ranges |= {"epochs": (0, 50), "images": (0, 20_000), "target": (0, 99)}
    return ranges


def _choices(tab: str) -> dict[str, tuple[str, ...]]:
    from playground.data.datasets import DATASETS
    from playground.training.experiments import SETTINGS

    methods = ("deconvnet", "guided_backprop") if tab == "units" else tuple(METHODS)
    return {
        "pool": ("none", *K.POOLING), "color": ("gray", "rgb"), "method": methods, "preset": tuple(PRESETS),
        "dataset": tuple(DATASETS), "network": (*models.MODELS, *models.BASELINES), "mode": ("head", "full"),
        "optimizer": ("adam", "sgd"), "vary": tuple(SETTINGS),
    }  # fmt: skip


def _one(tab: str, key: str, text: str) -> dict[str, object]:
    """The values one query key sets, or a ValueError naming the value."""
    whole = _whole_ranges(tab)
    if key in whole:
        return {FIELDS[tab][key]: _whole(text, *whole[key], key)}
    if key in ("lr", "weight_decay"):
        low = 1e-6 if key == "lr" else 0.0
        return {FIELDS[tab][key]: _number(text, low, 1.0, key)}
    if key == "example":
        if text not in EXAMPLES:
            raise ValueError(f"example={text[:20]!r} is not one of {', '.join(EXAMPLES)}")
        return {"photo": EXAMPLES.index(text)}
    if key == "kernel":
        return _kernel(text, tab)
    if key == "class":
        from playground.sharing.board import CODE_ALPHABET, CODE_LENGTH

        code = text.strip().upper()
        if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
            raise ValueError(f"class={text[:20]!r} is not a class code ({CODE_LENGTH} letters and digits)")
        return {"code": code}
    choices = _choices(tab)
    if key in choices:
        if text not in choices[key]:
            raise ValueError(f"{key}={text[:20]!r} is not one of {', '.join(choices[key])}")
        return {FIELDS[tab][key]: text}
    if key in ("layer", "target", "values"):  # checked by the tab, as when typed there
        if not text or len(text) > 80:
            raise ValueError(f"{key} must be 1 to 80 characters")
        return {FIELDS[tab][key]: text}
    raise ValueError(f"{key} is not a setting of the {tab} tab")


def parse(query: dict[str, str]) -> tuple[View | None, list[str]]:
    """The view a link's query asks for (None: no ``tab``), and one sentence per value it could not use."""
    query = {str(k)[:40]: str(v)[:2000] for k, v in dict(query).items()}
    tab = query.get("tab")
    if tab is None:
        return None, []
    if tab not in TABS:
        return None, [f"tab={tab[:20]!r} is not one of {', '.join(TABS)}; the page opened as usual."]
    values, problems = {}, []
    if "model" in query:
        if query["model"] in models.MODELS:
            values["model"] = query["model"]
        else:
            problems.append(f"model={query['model'][:20]!r} is not one of {', '.join(models.MODELS)}")
    for key, text in query.items():
        if key in ("tab", "model", "__theme", "view"):
            continue
        if key not in FIELDS[tab]:
            problems.append(
                f"{key} is not a setting of the {tab} tab" if key in KEYS else f"{key[:20]!r} is not a link key"
            )
            continue
        try:
            values.update(_one(tab, key, text))
        except ValueError as error:
            problems.append(str(error))
    return View(tab, values), [f"{p}: left as it was." for p in problems]


def address(base: str, view: View) -> str:
    """The link that opens ``view``: ``base`` (the page's own address) and the query keys."""
    back = {field: key for key, field in FIELDS[view.tab].items()}
    query = {"tab": view.tab}
    for field, value in view.values.items():
        if field == "model":
            query["model"] = str(value)
        elif field == "photo":
            query["example"] = EXAMPLES[int(value)]
        elif field == "custom_kernel":
            query["kernel"] = ";".join(",".join(row.split()) for row in str(value).splitlines())
        elif field == "kernel" and value == "custom":
            continue
        elif field in back:
            query[back[field]] = f"{value:g}" if isinstance(value, float) else str(value)
    return base.split("?")[0] + "?" + urllib.parse.urlencode(query, safe=",;")


# --- setting the page's controls -----------------------------------------------------------------------------


def targets(views: dict[str, object], wanted: dict[str, set[str]]) -> list[tuple[str, str, object]]:
    """(tab, field, component) for every field in ``wanted`` (tab -> fields) that the tab's layout has."""
    found = []
    for tab, fields in wanted.items():
        for field in sorted(fields):
            # every tab's photo input is its layout's ``image``; Train's network its ``model``
            name = {"photo": "image", "network": "model"}.get(field, field)
            component = getattr(views.get(tab), name, None) if tab in views else None
            if component is not None:
                found.append((tab, field, component))
    return found


def all_targets(views: dict[str, object]) -> list[tuple[str, str, object]]:
    """(tab, field, component) for every setting a link can carry, on every tab (the lab's custom kernel too)."""
    wanted = {
        tab: set(fields.values()) | ({"custom_kernel"} if tab == "lab" else set()) for tab, fields in FIELDS.items()
    }
    return targets(views, wanted)


def values_for(view: View, targets_: list[tuple[str, str, object]]) -> list:
    """What the page is sent to open ``view``: the tab, the model chooser's value, then each target's value
    (``gr.skip()`` where the view leaves it alone)."""
    values = [gr.Tabs(selected=view.tab), view.values.get("model", gr.skip())]
    for tab, field, _ in targets_:
        if tab != view.tab or field not in view.values:
            values.append(gr.skip())
        elif field == "photo":
            values.append(example_paths()[int(view.values[field])])
        else:
            values.append(view.values[field])
    return values


def example_of(path) -> int | None:
    """Which example photo ``path`` is (Gradio hands an example over as a copy under the same name)."""
    import os

    names = [os.path.basename(p) for p in example_paths()]
    name = os.path.basename(str(path or ""))
    return names.index(name) if name in names else None


def current_view(tab: str, fields: list[str], values: list) -> tuple[View, str]:
    """The view a tab's controls show now, and a note on what a link cannot carry (an uploaded photo)."""
    settings, note = dict(zip(fields, values)), ""
    if "photo" in settings:
        example = example_of(settings["photo"])
        if example is None:
            settings.pop("photo")
            note = " Your own photo is not in the link: whoever opens it uploads it again (the cup opens meanwhile)."
        else:
            settings["photo"] = example
    if settings.get("kernel") != "custom":
        settings.pop("custom_kernel", None)
    if "dataset" in settings and settings["dataset"] not in _choices(tab)["dataset"]:
        settings.pop("dataset")
        note += " Your own images are not in the link: whoever opens it uploads them again."
    settings = {
        k: (int(v) if isinstance(v, float) and v.is_integer() and k not in ("lr", "weight_decay") else v)
        for k, v in settings.items()
        if v is not None and v != ""
    }
    return View(tab, settings), note


def link_row(tab: str) -> tuple[gr.Button, gr.Textbox]:
    """The "Link to this view" button of a tab and the box its address appears in, to copy."""
    with gr.Row():
        button = gr.Button("Link to this view", size="sm", elem_id=f"{tab}-link-button", scale=0, min_width=160)
        box = gr.Textbox(label="Link to this view (copy it)", buttons=["copy"], interactive=False,
                         elem_id=f"{tab}-link", scale=4)  # fmt: skip
    return button, box


def make_link(tab: str, fields: tuple[str, ...], *values) -> str:
    """The link of what ``tab`` shows: its controls' ``values`` (by ``fields``), then the page's address."""
    *settings, href = values
    view, note = current_view(tab, list(fields), settings)
    if note:
        gr.Info(note.strip())
    return address(str(href or ""), view)


LOCATION_JS = "(...values) => [...values.slice(0, -1), window.location.href]"


def wire(demo: gr.Blocks, tabs: gr.Tabs, chooser, views: dict[str, object], rows: dict[str, tuple]) -> None:
    """A link opens its view when the page loads; each tab's button makes the link of what it shows."""
    from ui.handlers import user_errors

    every = all_targets(views)

    @user_errors
    def opened(request: gr.Request):
        view, problems = parse(dict(getattr(request, "query_params", None) or {}))
        if problems:
            gr.Warning("This link: " + " ".join(problems))
        return values_for(view, every) if view else [gr.skip()] * (2 + len(every))

    demo.load(opened, None, [tabs, chooser, *[c for _, _, c in every]], api_visibility="private")
    location = gr.Textbox(visible=False)
    for tab, (button, box) in rows.items():
        mine = [(field, component) for t, field, component in every if t == tab]
        fields = [field for field, _ in mine] + (["model"] if tab in MODEL_TABS else [])
        inputs = [component for _, component in mine] + ([chooser] if tab in MODEL_TABS else [])

        make = user_errors(functools.partial(make_link, tab, tuple(fields)))
        button.click(make, [*inputs, location], box, js=LOCATION_JS, api_visibility="private")
