"""Reading the report pages back as a test would look at them: parsed strictly (the pages are
well-formed XML as well as HTML), each chart's series and their point counts, and the page's
outside references (there must be none)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def parse(page: str) -> ET.Element:
    """The page's root element; raises ParseError on anything not well-formed."""
    assert page.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(page)


def charts(root: ET.Element) -> dict[str, list[tuple[str, int]]]:
    """Each chart's key -> its drawn series as (label, points), in drawing order."""
    out: dict[str, list[tuple[str, int]]] = {}
    for svg in root.iter(SVG + "svg"):
        key = svg.get("data-chart")
        assert key is not None and key not in out, key
        out[key] = [
            (g.get("data-series") or "", int(g.get("data-points") or -1))
            for g in svg.iter(SVG + "g")
            if g.get("class") == "series"
        ]
    return out


def chart(root: ET.Element, key: str) -> ET.Element:
    (svg,) = [s for s in root.iter(SVG + "svg") if s.get("data-chart") == key]
    return svg


def rules(root: ET.Element, key: str) -> list[str]:
    """The labels of a chart's marker rules."""
    return [g.get("data-rule") or "" for g in chart(root, key).iter(SVG + "g") if g.get("class") == "rule"]


def text(element: ET.Element) -> str:
    return "".join(element.itertext())


def outside_references(page: str) -> list[str]:
    """src/href attributes and url(...) that would reach outside the page (not #fragments)."""
    found = re.findall(r"""\b(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']""", page)
    found += re.findall(r"url\(([^)]*)\)", page)
    return [ref for ref in found if not ref.startswith("#")]
