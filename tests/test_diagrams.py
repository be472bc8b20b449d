"""The three training-step diagrams (docs/_static/diagrams/*.svg) and the pages that show them.

Each diagram is a hand-written SVG shown through an ``<img>``, where the page's stylesheet and its dark
theme do not reach: so it carries its own opaque light background, and every colour is declared once,
in its ``<style>``, where these tests read it. Text is real SVG text, sized in viewBox units.
"""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import DOCS

DIAGRAMS = DOCS / "_static" / "diagrams"
NAMES = ["pytorch-step", "linen-step", "nnx-step"]
SVG = "{http://www.w3.org/2000/svg}"
MAX_BYTES = 6 * 1024
# The narrowest the site shows a diagram: in a tab-set on a 375 px phone it is 303 px wide (a figure in the
# text column, 327 px). Its text must be at least 10 CSS px there.
NARROWEST_PX, SMALLEST_TEXT_PX = 300, 10
# A character's advance, in em, a little above the widest font that readers' systems pick: monospace
# fonts are 0.6 em; DejaVu Sans (Linux) is 0.50 em on these labels, 0.57 em in bold, wider than Segoe UI,
# San Francisco or Roboto.
ADVANCE = {"monospace": 0.61, "sans-serif": 0.52, "sans-serif bold": 0.59}
# The colours say what kind of state a box holds, the same in the three diagrams.
KINDS = {"p": "parameters", "s": "other model state", "o": "optimizer state", "r": "random state"}
# Each diagram's labels and the class of the box each one sits in (every occurrence).
LABELS = {
    "pytorch-step": {
        "parameters": "p",
        "buffers": "s",
        "state": "o",
        "global RNG": "r",
        "model(x) · loss.backward() · optimizer.step()": "fn",
    },
    "linen-step": {
        "params": "p",
        "batch_stats": "s",
        "opt_state": "o",
        "step": "o",
        "dropout": "r",
        "key": "r",
        "@jax.jit train_step(state, x, y, dropout_key)": "jit",
        "LinenNet()": "obj",
        "loss": "obj",
    },
    "nnx-step": {
        "Param": "p",
        "BatchStat": "s",
        "RngState": "r",
        "opt_state": "o",
        "step": "o",
        "graphdef": "obj",
        "pure function": "fn",
        "nnx.jit": "jit",
        "loss": "obj",
    },
}
# What each diagram's text alternative on a page must say.
ALT_SAYS = {
    "pytorch-step": ["parameters", "buffers", "optimizer", "random", "in place"],
    "linen-step": ["params", "batch_stats", "opt_state", "dropout key", "returns a new state", "unchanged"],
    "nnx-step": ["Param", "BatchStat", "RngState", "opt_state", "splits", "graphdef", "back into"],
}
PAGES = ["index", "stateful-vs-stateless"]


# -- Reading an SVG -------------------------------------------------------------------------------


def load(name: str) -> ET.Element:
    return ET.parse(DIAGRAMS / f"{name}.svg").getroot()


def stylesheet(root: ET.Element) -> list[tuple[str, dict[str, str]]]:
    """The rules of the diagram's <style>, as (selector, declarations), one selector per rule."""
    (style,) = root.iter(f"{SVG}style")
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", style.text):
        declarations = dict(
            (part.split(":", 1)[0].strip(), part.split(":", 1)[1].strip())
            for part in body.split(";")
            if ":" in part
        )
        rules += [(selector.strip(), declarations) for selector in selectors.split(",")]
    return rules


def computed(element: ET.Element, rules) -> dict[str, str]:
    """The element's properties: element rules, then class rules (more specific), then its own style."""
    tag = element.tag.removeprefix(SVG)
    classes = element.get("class", "").split()
    props = {}
    for selector, declarations in rules:
        if selector == tag:
            props.update(declarations)
    for selector, declarations in rules:
        if selector.startswith(".") and selector[1:] in classes:
            props.update(declarations)
    assert "style" not in element.attrib and "fill" not in element.attrib, "colours belong in the <style>"
    return props


def rgb(colour: str) -> tuple[float, float, float]:
    colour = {"#fff": "#ffffff", "#000": "#000000"}.get(colour.lower(), colour.lower())
    assert re.fullmatch(r"#[0-9a-f]{6}", colour), colour
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(colour):
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb(colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted([luminance(first), luminance(second)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def view_width(root: ET.Element) -> float:
    return float(root.get("viewBox").split()[2])


def rects(root, rules):
    return [
        (
            float(r.get("x")),
            float(r.get("y")),
            float(r.get("width")),
            float(r.get("height")),
            r.get("class", ""),
            computed(r, rules),
        )
        for r in root.iter(f"{SVG}rect")
    ]


def texts(root, rules):
    """Each <text>: its string, its estimated box (left, top, right, bottom) and its properties."""
    result = []
    for text in root.iter(f"{SVG}text"):
        props = computed(text, rules)
        size = float(props["font-size"].removesuffix("px"))
        family = props["font-family"].rsplit(",", 1)[-1].strip()
        bold = props.get("font-weight") in ("700", "bold")
        advance = ADVANCE["sans-serif bold" if family == "sans-serif" and bold else family]
        width = len(text.text) * advance * size
        x, y = float(text.get("x")), float(text.get("y"))
        left = {"middle": x - width / 2, "end": x - width}.get(props.get("text-anchor"), x)
        result.append((text.text, (left, y - 0.75 * size, left + width, y + 0.25 * size), props))
    return result


def box_of(box, all_rects):
    """The smallest rectangle that holds the middle of a text's box."""
    mid_x, mid_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    holding = [r for r in all_rects if r[0] <= mid_x <= r[0] + r[2] and r[1] <= mid_y <= r[1] + r[3]]
    return min(holding, key=lambda r: r[2] * r[3])


# -- The files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_diagram_is_small_and_self_contained(name):
    path = DIAGRAMS / f"{name}.svg"
    assert path.stat().st_size < MAX_BYTES
    root = load(name)
    assert root.tag == f"{SVG}svg"
    tags = {element.tag.removeprefix(SVG) for element in root.iter()}
    assert not tags & {"image", "font", "font-face", "foreignObject", "script", "use"}, tags
    for element in root.iter():
        for attribute, value in element.attrib.items():
            if attribute.endswith("href"):
                assert value.startswith("#"), (attribute, value)
    (style,) = root.iter(f"{SVG}style")
    assert "@import" not in style.text and "@font-face" not in style.text
    assert all(url.startswith("#") for url in re.findall(r"url\(([^)]*)\)", style.text))


@pytest.mark.parametrize("name", NAMES)
def test_diagram_has_a_title_a_description_and_the_img_role(name):
    root = load(name)
    assert root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert len(title.text.strip()) > 20 and len(desc.text.strip()) > 200
    assert root.get("aria-labelledby").split() == [title.get("id"), desc.get("id")]
    # the picture's own heading is its title
    first_text = next(root.iter(f"{SVG}text")).text
    assert first_text == title.text


def test_the_three_diagrams_share_one_stylesheet():
    """So a colour, a box or an arrow means the same thing in each."""
    styles = {name: next(load(name).iter(f"{SVG}style")).text for name in NAMES}
    assert len(set(styles.values())) == 1
    fills = {selector: d["fill"] for selector, d in stylesheet(load(NAMES[0])) if selector[1:] in KINDS}
    assert len(fills) == len(KINDS) and len(set(fills.values())) == len(KINDS), "one colour per kind of state"


@pytest.mark.parametrize("name", NAMES)
def test_every_label_is_readable_on_a_phone(name):
    root = load(name)
    rules = stylesheet(root)
    for text, _, props in texts(root, rules):
        size = float(props["font-size"].removesuffix("px"))
        assert size * NARROWEST_PX / view_width(root) >= SMALLEST_TEXT_PX, text
        assert size * 340 / view_width(root) >= SMALLEST_TEXT_PX, text
        # system fonts only, ending in a generic family
        assert props["font-family"].rsplit(",", 1)[-1].strip() in ("sans-serif", "monospace"), text


@pytest.mark.parametrize("name", NAMES)
def test_colours_meet_wcag_aa_on_every_background(name):
    root = load(name)
    rules = stylesheet(root)
    backgrounds = {props["fill"] for *_, props in rects(root, rules)}
    text_colours = {props["fill"] for *_, props in texts(root, rules)}
    # the picture is opaque and light: it reads on the light page and on the dark one
    outer = rects(root, rules)[0]
    assert (outer[0], outer[1]) <= (1, 1) and outer[2] >= view_width(root) - 2
    assert contrast(outer[5]["fill"], "#121212") > 10
    for colour in text_colours:
        for background in backgrounds:
            assert contrast(colour, background) >= 4.5, (colour, background)
    # lines and borders that carry meaning (arrows, the boxes of each kind): 3:1 (WCAG 1.4.11)
    strokes = {
        props["stroke"] for path in root.iter(f"{SVG}path") if (props := computed(path, rules)).get("stroke")
    }
    strokes |= {props["stroke"] for *_, cls, props in rects(root, rules) if cls in KINDS}
    for colour in strokes:
        for background in backgrounds:
            assert contrast(colour, background) >= 3, (colour, background)


@pytest.mark.parametrize("name", NAMES)
def test_each_label_sits_inside_a_box_of_its_kind(name):
    root = load(name)
    rules = stylesheet(root)
    all_rects = rects(root, rules)
    found = set()
    for text, box, _ in texts(root, rules):
        x, y, width, height, cls, _ = box_of(box, all_rects)
        assert x + 2 <= box[0] and box[2] <= x + width - 2, f"{text!r} does not fit its box"
        if text in LABELS[name]:
            assert cls == LABELS[name][text], (text, cls)
            found.add(text)
    assert found == set(LABELS[name])
    # every kind of state appears in every diagram
    assert {cls for *_, cls, _ in all_rects} >= set(KINDS)


def dimmed(colour: str, brightness: float, contrast_factor: float) -> str:
    """A colour through CSS ``filter: brightness(b) contrast(c)``, as Chromium applies it (in sRGB)."""
    channels = [min(1, max(0, (c * brightness - 0.5) * contrast_factor + 0.5)) for c in rgb(colour)]
    return "#" + "".join(f"{round(c * 255):02x}" for c in channels)


def test_dimmed_matches_what_chromium_draws():
    # pixels of the PyTorch diagram in the dark theme, read from a screenshot: panel, step box, white box
    assert [dimmed(c, 0.8, 1.2) for c in ("#f6f8fa", "#eaeef2", "#fff")] == ["#d3d5d6", "#c7cbcf", "#dbdbdb"]


# -- The pages ------------------------------------------------------------------------------------


def test_colours_meet_wcag_aa_under_the_dark_themes_image_filter(site):
    """In the dark theme, pydata-sphinx-theme dims every image of a page (``filter: brightness(.8)
    contrast(1.2)`` on ``html[data-theme=dark] img``); the diagrams stay above AA through it."""
    bundle = "".join(path.read_text(encoding="utf8") for path in (site.html / "_static").glob("**/*.css"))
    found = set(
        re.findall(r"data-theme=dark\] img[^{]*\{filter:brightness\(([\d.]+)\) contrast\(([\d.]+)\)", bundle)
    )
    assert found, "the dark theme's image filter is gone: check the diagrams in dark mode again"
    for brightness, contrast_factor in {(float(b), float(c)) for b, c in found}:
        for name in NAMES:
            root = load(name)
            rules = stylesheet(root)
            backgrounds = {props["fill"] for *_, props in rects(root, rules)}
            for *_, props in texts(root, rules):
                for background in backgrounds:
                    text, behind = (
                        dimmed(c, brightness, contrast_factor) for c in (props["fill"], background)
                    )
                    assert contrast(text, behind) >= 4.5, (name, props["fill"], background)


@pytest.mark.parametrize("docname", PAGES)
def test_pages_show_the_three_diagrams_with_a_text_alternative(site, docname):
    images = {
        Path(image["src"]).stem: image for image in site.soup(docname).select("article img[src$='.svg']")
    }
    assert set(NAMES) <= set(images), sorted(images)
    for name in NAMES:
        image = images[name]
        assert (site.html / image["src"]).read_bytes() == (DIAGRAMS / f"{name}.svg").read_bytes()
        alt = image.get("alt", "")
        assert len(alt) > 150 and not alt.lower().startswith(("diagram", "image", "picture")), alt
        for words in ALT_SAYS[name]:
            assert words in alt, (name, words)
        caption = image.find_parent("figure").select_one("figcaption")
        assert caption is not None and len(caption.get_text(strip=True)) > 40
