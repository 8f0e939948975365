"""What every reader needs from the page (WCAG 2.2 AA): colours with enough contrast, and a small script that
fills in what Gradio leaves out (text alternatives, names, keyboard behaviour).

``app.py`` passes ``THEME`` and ``HEAD`` to ``launch()``; tests/e2e/test_accessibility.py checks every tab
with axe-core at 1440 and 390 px.
"""

from __future__ import annotations

import gradio as gr

# Gradio's default theme draws white on orange-500 (2.8:1), orange-500 text for the selected tab (2.8:1),
# white on red-500 for Stop (3.8:1) and zinc-400 for softer text (slider limits, upload hints, the footer:
# 1.9:1). Each is moved to the nearest shade that reaches 4.5:1 on white: orange-700 (5.2:1), red-700
# (6.5:1), zinc-600 (7.7:1).
THEME = gr.themes.Default().set(
    color_accent="*primary_700",
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    button_primary_background_fill_dark="*primary_700",
    button_primary_background_fill_hover_dark="*primary_800",
    button_cancel_background_fill=gr.themes.colors.red.c700,
    button_cancel_background_fill_hover=gr.themes.colors.red.c800,
    body_text_color_subdued="*neutral_600",
)

# Runs once in the page and again whenever Gradio redraws part of it (a new result, a tab shown).
_SCRIPT = r"""
(() => {
  const KEYS = {"common.upload": "Upload", "common.clear": "Clear", "common.download": "Download"};
  const labelOf = (el) => {
    const block = el.closest(".block");
    const label = block && block.querySelector("[data-testid=block-label], .label");
    return label ? label.textContent.trim() : "";
  };
  const describePictures = (root) => {
    // A result picture says what it shows: its component's label, and a gallery tile's caption.
    for (const img of root.querySelectorAll("img:not([alt]), img[alt='']")) {
      const label = labelOf(img);
      const tile = img.closest(".thumbnail-item, .gallery-item, button");
      const caption = tile && tile.querySelector(".caption-label, figcaption, .caption");
      // An example photo has no caption: its file's name says which it is ("chelsea").
      const example = img.closest(".gallery-item") && decodeURIComponent(img.src.split("/").pop().split(".")[0]);
      const text = [label, (caption && caption.textContent.trim()) || example].filter(Boolean).join(": ");
      if (text) img.setAttribute("alt", text);
    }
    // An empty picture is named ("Empty value") but has no role, so that name is never read out.
    for (const box of root.querySelectorAll(".empty[aria-label]:not([role])")) {
      box.setAttribute("role", "img");
      const label = labelOf(box);
      if (label) box.setAttribute("aria-label", label + ": nothing yet");
    }
  };
  const nameControls = (root) => {
    // Gradio names a drop zone "Click to upload or drop files" while it shows other words: the name a
    // speech-input user says must be the text they see.
    for (const zone of root.querySelectorAll("button.upload-container[aria-label], .upload-container [aria-label]")) {
      const seen = zone.innerText.replace(/\s+/g, " ").trim();
      if (seen && !zone.getAttribute("aria-label").includes(seen)) {
        const label = labelOf(zone);
        zone.setAttribute("aria-label", label ? label + ": " + seen : seen);
      }
    }
    // A gallery tile with a caption is named "Thumbnail 1 of 3": its caption goes first in its name.
    for (const tile of root.querySelectorAll(".thumbnail-item[aria-label]")) {
      const caption = tile.querySelector(".caption-label");
      const seen = caption && caption.textContent.trim();
      if (seen && !tile.getAttribute("aria-label").includes(seen)) {
        tile.setAttribute("aria-label", seen + " (" + tile.getAttribute("aria-label") + ")");
      }
    }
    // Untranslated message keys ("common.upload") are never read out.
    for (const el of root.querySelectorAll("[aria-label], [title]")) {
      for (const name of ["aria-label", "title"]) {
        const value = el.getAttribute(name);
        if (value && /^[a-z_]+(\.[a-z_]+)+$/.test(value)) {
          const word = value.split(".").pop().replace(/_/g, " ");
          el.setAttribute(name, KEYS[value] || word.charAt(0).toUpperCase() + word.slice(1));
        }
      }
    }
  };
  // A dropdown's list scrolls, so the browser would stop Tab on it; it vanishes as the input loses focus,
  // and focus fell onto the page itself. Done at once (not at the next frame): the list opens on focus, and
  // the next Tab may come before a frame is drawn.
  const keepListsOutOfTabOrder = () => {
    for (const list of document.querySelectorAll("ul[role=listbox]:not([tabindex])")) {
      list.setAttribute("tabindex", "-1");
    }
  };
  const fix = () => { describePictures(document); nameControls(document); };
  let queued = false;
  new MutationObserver(() => {
    keepListsOutOfTabOrder();
    if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; fix(); }); }
  }).observe(document.documentElement, {childList: true, subtree: true, characterData: true, attributes: true,
    attributeFilter: ["alt", "aria-label", "src"]});
  document.addEventListener("DOMContentLoaded", fix);

  // Typing in a dropdown replaces its text, as in any select box, instead of adding to it.
  document.addEventListener("focusin", (event) => {
    const input = event.target;
    if (input.matches && input.matches("input[role=combobox]")) setTimeout(() => input.select(), 0);
  });
  // Escape closes what is open: the "More tabs" list on a narrow screen, a dropdown's list.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const menu of document.querySelectorAll(".overflow-menu")) {
      const list = menu.querySelector(".overflow-dropdown");
      if (list && !list.classList.contains("hide")) {
        const opener = menu.querySelector("button");
        opener.click();
        opener.focus();
      }
    }
  });
})();
"""
HEAD = f"<script>{_SCRIPT}</script>"
