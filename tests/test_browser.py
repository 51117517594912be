"""The web page end to end in headless Chromium (Debian's ``chromium``, driven by Playwright).

The server is real uvicorn in a thread on a free loopback port. A screenshot of the result
is saved as ``test-artifacts/serve-page.png`` at the repository root (CI keeps it).
"""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-quic"]


def _missing(reason: str) -> None:
    # CI sets MEDNER_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
    if os.environ.get("MEDNER_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (MEDNER_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not CHROMIUM.exists():
    _missing(f"{CHROMIUM} is not installed (apt-get install -y chromium); CI installs it")
try:
    from playwright import sync_api
except ImportError:
    _missing("playwright is not installed (pip install playwright; do NOT run "
             "`playwright install`: the test drives Debian's chromium)")
pytest.importorskip("fastapi")

from test_serve_support import TRAIN_DOCS, running_server, tiny_model  # noqa: E402

from medner.serve.app import create_app  # noqa: E402

TIMEOUT_MS = 60_000  # generous: CI machines with 2 busy cores
SECRET = "browser-test-key"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from medner.backends import load

    return load(tiny_model(tmp_path_factory))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"script error: {exc}"))
    # 401/413 answers are part of some tests; a 404 would be a missing asset.
    page.on("response", lambda r: errors.append(f"404 {r.url}") if r.status == 404 else None)
    yield page
    context.close()
    assert not errors, errors


def test_extract_highlights_table_legend_download_and_screenshot(model, page, tmp_path):
    text = " ".join(d["text"] + "." for d in TRAIN_DOCS)
    with running_server(create_app(model)) as url:
        page.goto(url + "/")
        # Not page.wait_for_function("..."): polling a string predicate evals it in the page,
        # which the page's Content-Security-Policy (no 'unsafe-eval') rightly refuses.
        sync_api.expect(page.locator("#model-info")).to_contain_text("DISEASE",
                                                                      timeout=TIMEOUT_MS)
        page.fill("#text", text)
        page.click("#extract")
        page.wait_for_selector("#results:not([hidden])")

        expected = [(s["text"], s["label"]) for s in
                    model.extract([text])[0].to_dict()["spans"]]
        assert len(expected) >= 8
        marks = page.locator("#highlighted mark.entity")
        assert marks.count() == len(expected)
        got = [(m.get_attribute("data-label"), m.get_attribute("data-start"))
               for m in marks.all()]
        assert [label for label, _ in got] == [label for _, label in expected]
        # The highlighted view reproduces the text exactly, apart from the label tags.
        shown = page.evaluate("""() => {
            const box = document.getElementById('highlighted').cloneNode(true);
            box.querySelectorAll('.tag').forEach((t) => t.remove());
            return box.textContent; }""")
        assert shown == text
        # One colour per label, the same in the text and the legend.
        colours = page.evaluate("""() => {
            const out = {};
            document.querySelectorAll('#highlighted mark.entity').forEach((m) => {
                out[m.dataset.label] = out[m.dataset.label] || new Set();
                out[m.dataset.label].add(getComputedStyle(m).backgroundColor); });
            const legend = {};
            document.querySelectorAll('#legend li').forEach((li) => {
                legend[li.dataset.label] = getComputedStyle(li).backgroundColor; });
            return {marks: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v]])),
                    legend}; }""")
        for label, seen in colours["marks"].items():
            assert seen == [colours["legend"][label]]
        assert len(set(colours["legend"].values())) == len(colours["legend"]) == 4

        rows = page.locator("#entities tbody tr")
        assert rows.count() == len(expected)
        first = rows.nth(0).locator("td").all_inner_texts()
        span0 = model.extract([text])[0].spans[0]
        assert first[1:5] == [span0.text, span0.label, str(span0.start), str(span0.end)]
        assert 0 <= float(first[5]) <= 1
        assert "found" in page.inner_text("#status")

        with page.expect_download() as info:
            page.click("#download")
        saved = tmp_path / "download.json"
        info.value.save_as(saved)
        data = json.loads(saved.read_text(encoding="utf-8"))
        assert data["text"] == text
        assert [(s["text"], s["label"]) for s in data["spans"]] == expected

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 10_000


def test_errors_are_shown_and_html_in_the_text_is_not_run(model, page):
    with running_server(create_app(model, max_chars=300)) as url:
        page.goto(url + "/")
        page.fill("#text", "x" * 301)
        page.click("#extract")
        page.wait_for_selector("#status.error")
        assert "max_chars" in page.inner_text("#status")

        page.fill("#text", '<img src=x onerror="window.pwned=1"> she has malaria')
        page.click("#extract")
        page.wait_for_selector("#results:not([hidden])")
        assert page.evaluate("window.pwned") is None
        assert page.locator("#highlighted img").count() == 0
        shown = page.evaluate("document.getElementById('text').value")
        assert shown.startswith("<img src=x")
        assert page.evaluate("document.getElementById('highlighted').textContent") \
            .startswith("<img src=")


def test_api_key_field_appears_and_is_used(model, page):
    with running_server(create_app(model, api_key=SECRET)) as url:
        page.goto(url + "/")
        page.wait_for_selector("#key-row:not([hidden])")
        page.fill("#text", TRAIN_DOCS[0]["text"])
        page.click("#extract")
        page.wait_for_selector("#status.error")
        assert "API key" in page.inner_text("#status")
        page.fill("#api-key", SECRET)
        page.click("#extract")
        page.wait_for_selector("#results:not([hidden])")
        assert page.locator("#highlighted mark.entity").count() == len(TRAIN_DOCS[0]["spans"])


def test_chromium_is_debians(browser):
    """Guard against a Playwright-downloaded browser sneaking in: the browser the tests drive
    is the file Debian's chromium package installed, and reports that package's version."""
    owner = subprocess.run(["dpkg", "-S", str(CHROMIUM)], capture_output=True, text=True)
    assert owner.returncode == 0 and owner.stdout.startswith("chromium:"), owner.stdout
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True,
                             check=True).stdout  # e.g. "Chromium 156.0.8078.73 built on Debian"
    assert browser.version and browser.version in version, (browser.version, version)


class _NamesEveryConcept:
    """A stand-in linker and relation stage: the page is under test here, not the models."""

    index = None
    """The linker's concept index, which the pipeline hands to the relation stage."""

    def link(self, documents):
        from dataclasses import replace

        return [replace(d.with_spans([replace(s, ids=(f"ID{k}",)) for k, s in
                                      enumerate(d.spans)]),
                        metadata={"concepts": {f"ID{k}": f"concept {k}"
                                               for k in range(len(d.spans))}})
                for d in documents]

    def predict(self, documents, *, hierarchy=None):
        from dataclasses import replace

        from medner.document import Relation

        return [replace(d, relations=(Relation("CID", "ID0", "ID1"),)) for d in documents]


@contextmanager
def extracted_on_page(chain, page):
    """The page, served by ``chain``, after extracting from the training texts (at least two
    spans, so that stand-in stages have something to mark)."""
    text = " ".join(d["text"] + "." for d in TRAIN_DOCS)
    assert len(chain.extract(text)[0].spans) >= 2
    with running_server(create_app(chain)) as url:
        page.goto(url)
        page.fill("#text", text)
        page.click("#extract")
        page.wait_for_selector("#entities tbody tr")
        yield page


def test_concepts_and_relations_are_shown(model, page):
    from medner.pipeline import Pipeline

    stage = _NamesEveryConcept()
    with extracted_on_page(Pipeline(model, linker=stage, relations=stage), page):
        first = page.locator("#entities tbody tr").nth(0).locator("td").all_inner_texts()
        assert first[-1] == "ID0 concept 0"
        assert "ID0 concept 0" in page.locator("#highlighted mark.entity").nth(0).get_attribute(
            "title")
        assert page.inner_text("#relations") == "CID: ID0 concept 0 \u2192 ID1 concept 1"
        assert page.is_visible("#relations-box")


class _NegatesTheFirst:
    """A stand-in assertion stage: the first span is absent, the second possible."""

    def predict(self, documents):
        statuses = ("absent", "possible")
        return [d.with_spans(s.with_attribute("assertion", statuses[k] if k < 2 else "present")
                             for k, s in enumerate(d.spans)) for d in documents]


def test_absent_and_possible_findings_are_marked_and_explained(model, page):
    from medner.pipeline import Pipeline

    with extracted_on_page(Pipeline(model, assertion=_NegatesTheFirst()), page):
        marks = page.locator("#highlighted mark.entity")
        assert marks.nth(0).get_attribute("class") == "entity absent"
        assert marks.nth(1).get_attribute("class") == "entity possible"
        struck = marks.nth(0).evaluate("m => getComputedStyle(m).textDecorationLine")
        assert struck == "line-through"
        assert "dashed" in marks.nth(1).evaluate("m => getComputedStyle(m).outlineStyle")
        assert "absent" in marks.nth(0).get_attribute("title")
        legend = page.inner_text("#legend")
        assert "absent (1): negated in the text, struck through" in legend
        assert "possible (1): uncertain in the text, dashed outline" in legend
        statuses = page.locator("#entities tbody td.status").all_inner_texts()
        assert statuses[:2] == ["absent", "possible"]
