"""Page benchmark (`nox -s bench-pages`): what a first visit to each page costs, and its Lighthouse scores.

Serves a built site (default ``_build/html``) on 127.0.0.1 with gzip, as a static host does
(tests/static_server.py), and for each page:

- loads it in Chromium with an empty cache and adds up the bytes transferred (compressed, headers
  included) and the bytes of the files once decompressed;
- runs Lighthouse 12.2.3 (``npm ci`` installs it) with its default mobile settings: a mid-range phone,
  simulated slow 4G and CPU slowdown; performance is the median of ``--runs`` runs.

It prints the table, checks the targets below and, unless ``--no-write``, writes the table into
docs/status.md between its "page-bench" markers. A benchmark, not a test: it fails nothing.

Targets: under 250 KiB transferred (500 KiB for a page with interactive trees or plots, which carry
their own scripts or images); Lighthouse performance >= 0.98, accessibility, best practices and SEO 1.0.

    python tests/bench_pages.py [--site DIR] [--runs 5] [--no-write] [--pages NAME ...]

``--pages`` measures only the pages named (``sharded-state``) and replaces their rows in the table
already on the status page, adding a row for a new page; the rows of the other pages stay as they were
measured.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bs4 import BeautifulSoup
from chromium import CHROMIUM, CHROMIUM_ARGS
from playwright.sync_api import sync_playwright
from static_server import serve

ROOT = Path(__file__).resolve().parents[1]
STATUS_PAGE = ROOT / "docs" / "status.md"
BEGIN, END = "% page-bench:begin", "% page-bench:end"
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
CATEGORIES = ["performance", "accessibility", "best-practices", "seo"]
BUDGET, HEAVY_BUDGET = 250 * 1024, 500 * 1024


def pages(site: Path) -> list[str]:
    return sorted(
        path.relative_to(site).as_posix() for path in site.glob("*.html") if path.name != "genindex.html"
    )


def is_heavy(html: str) -> str:
    """The heavy outputs of a page: "trees" (a script in an output), "plots" (an image) or none ("")."""
    outputs = BeautifulSoup(html, "html.parser").select(".cell_output")
    if any(output.select("script") for output in outputs):
        return "trees"
    return "plots" if any(output.select("img") for output in outputs) else ""


def weigh(browser, url: str) -> tuple[int, int, int]:
    """(bytes transferred, bytes decompressed, requests) of a first visit, up to network idle."""
    context = browser.new_context(viewport={"width": 412, "height": 823})
    page = context.new_page()
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(url, wait_until="networkidle")
    transferred = decoded = 0
    for response in responses:
        sizes = response.request.sizes()
        transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        decoded += len(response.body())
    context.close()
    return transferred, decoded, len(responses)


def lighthouse(url: str) -> dict[str, float]:
    """One Lighthouse run with the default (mobile) settings: {category: score}."""
    flags = " ".join(["--headless=new", *CHROMIUM_ARGS])
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run(
            [str(LIGHTHOUSE), url, "--quiet", "--output=json", f"--output-path={report}",
             f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={flags}"],
            check=True, env={**os.environ, "CHROME_PATH": CHROMIUM},
        )  # fmt: skip
        result = json.loads(report.read_text())
    return {name: result["categories"][name]["score"] for name in CATEGORIES} | {
        "failing": [
            audit_id
            for category in result["categories"].values()
            for ref in category["auditRefs"]
            if ref["weight"] > 0
            and (audit_id := ref["id"])
            and (result["audits"][audit_id]["score"] or 0) < 1
        ]
    }


def measure(site: Path, runs: int, names: list[str]) -> list[dict]:
    rows = []
    with serve(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name in names:
            url = base + name
            transferred, decoded, requests = weigh(browser, url)
            scores = [lighthouse(url) for _ in range(runs)]
            row = {
                "page": name,
                "heavy": is_heavy((site / name).read_text(encoding="utf8")),
                "transferred": transferred,
                "decoded": decoded,
                "requests": requests,
                "failing": sorted({audit for score in scores for audit in score["failing"]}),
            }
            for category in CATEGORIES:
                row[category] = statistics.median(score[category] for score in scores)
            row["performance runs"] = [score["performance"] for score in scores]
            rows.append(row)
            print(f"{name}: {row}", file=sys.stderr)
        browser.close()
    return rows


def verdict(row: dict) -> str:
    budget = HEAVY_BUDGET if row["heavy"] else BUDGET
    missed = []
    if row["transferred"] > budget:
        missed.append(f"over {budget // 1024} KiB")
    if row["performance"] < 0.98:
        missed.append("performance < 0.98")
    missed += [f"{name} < 1" for name in CATEGORIES[1:] if row[name] < 1]
    return "met" if not missed else "MISSED: " + ", ".join(missed)


def table(rows: list[dict], runs: int) -> str:
    """The status page's table: narrow enough for the page's width at 1280 px (browser-tested)."""
    lines = [
        f"Measured with `nox -s bench-pages` on {os.cpu_count()} cores ({platform.machine()}), Chromium and "
        f"Lighthouse 12.2.3 with its mobile settings; performance is the median of {runs} run(s). A first "
        "visit's KiB are those transferred (compressed), then uncompressed; a11y, BP, SEO: Lighthouse's "
        "accessibility, best practices and SEO scores.",
        "",
        "| page | first visit, KiB | requests | performance | each run | a11y, BP, SEO | targets |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        page = row["page"].removesuffix(".html") + (f" ({row['heavy']})" if row["heavy"] else "")
        others = ", ".join(f"{row[name]:.2f}" for name in ["accessibility", "best-practices", "seo"])
        lines.append(
            f"| {page} | {row['transferred'] / 1024:.0f} ({row['decoded'] / 1024:.0f}) | {row['requests']} "
            f"| {row['performance']:.2f} | {' '.join(f'{run:.2f}' for run in row['performance runs'])} "
            f"| {others} | {verdict(row)} |"
        )
    return "\n".join(lines)


def row_page(line: str) -> str:
    """The page of a table row: ``| porting (plots) | 101 ...`` is ``porting``."""
    return line.split("|")[1].split()[0]


def is_row(line: str) -> bool:
    """A row of the table, not its heading or the line under it."""
    return line.startswith("| ") and not line.startswith(("| page |", "| ---"))


def replace_rows(old: str, new: str) -> str:
    """The table ``old`` with the rows of ``new`` in place of those of the same pages, and the rows of
    pages it lacked added, in page order; its other rows and its heading as they were."""
    fresh = {row_page(line): line for line in new.splitlines() if is_row(line)}
    lines = old.splitlines()
    kept = {row_page(line): line for line in lines if is_row(line)} | fresh
    first = next(number for number, line in enumerate(lines) if is_row(line))
    rest = [line for line in lines[first:] if not is_row(line)]
    return "\n".join([*lines[:first], *(kept[page] for page in sorted(kept)), *rest])


def write_table(text: str, only_these_pages: bool) -> None:
    page = STATUS_PAGE.read_text(encoding="utf8")
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    if only_these_pages:
        text = replace_rows(page[start:end].strip(), text)
    STATUS_PAGE.write_text(page[:start] + "\n\n" + text + "\n\n" + page[end:], encoding="utf8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    # Lighthouse's own advice against its run-to-run variance: the median of five runs.
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--pages", nargs="+", metavar="NAME", help="measure these pages only (no .html)")
    options = parser.parse_args()
    names = [f"{name}.html" for name in options.pages] if options.pages else pages(options.site)
    rows = measure(options.site, options.runs, names)
    text = table(rows, options.runs)
    print(text)
    for row in rows:
        if row["failing"]:
            print(f"{row['page']}: Lighthouse audits below 1: {', '.join(row['failing'])}")
    if not options.no_write:
        write_table(text, only_these_pages=bool(options.pages))


if __name__ == "__main__":
    main()
