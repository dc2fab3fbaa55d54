"""The page's Convert tab in a real browser (Debian's Chromium through Playwright) against a live ``serve --ui``
with a generated OpenVoice converter: upload a recording, pick a cloned voice, get the original and the conversion."""

from __future__ import annotations

import base64
import io
import signal
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from conftest import voiced_signal
from live_server import start_server

playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("gradio")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-sync"]
SPEAK_KEY, ENROLL_KEY = "speak-key-0001", "enroll-key-0002"
WAIT = 120_000

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory, xtts_model, vc_model):
    folder = tmp_path_factory.mktemp("serve-ui-convert")
    config = {
        "xtts": {"model_dir": str(xtts_model), "max_new_tokens": 24},
        "convert": {"model_dir": str(vc_model)},
        "serve": {"keys": {SPEAK_KEY: "speak", ENROLL_KEY: "speak,enroll"}, "grace_seconds": 2.0},
    }
    live = start_server(folder, config, "--ui", timeout=120)
    yield live
    live.stop(signal.SIGKILL)


def test_convert_tab(server, references, tmp_path):
    enrolled = httpx.post(server.url + "/v1/voices", data={"name": "gus"}, files=[("files", ("ref.wav", references["ref.wav"].read_bytes()))],
                          headers={"Authorization": f"Bearer {ENROLL_KEY}"}, timeout=300)
    assert enrolled.status_code == 201, enrolled.text
    source = tmp_path / "line.wav"
    soundfile.write(str(source), voiced_signal(1.5, 22050), 22050)
    with playwright_api.sync_playwright() as driver:
        browser, page = _open_tab(driver, server, SPEAK_KEY, "Convert")
        page.set_input_files("#dv-convert-file input[type=file]", str(source))
        page.locator("#dv-convert-voice input").click()
        page.locator("#dv-convert-voice [role=option]", has_text="gus").first.wait_for()
        offered = page.locator("#dv-convert-voice [role=option]").all_inner_texts()
        # it offered the Piper voices too, and picked one first: "'en_US-joe-medium|' is not a valid voice id"
        assert offered and all("cloned" in option for option in offered), offered
        page.locator("#dv-convert-voice [role=option]", has_text="gus").first.click()
        page.click("#dv-convert")
        status = _text(page, "#dv-convert-status", "Done|Error|may not")
        assert "needs the 'enroll' scope" in status, status  # a speak key may not clone a voice here either

        page.locator("#dv-key :is(input, textarea)").fill(ENROLL_KEY)
        page.keyboard.press("Tab")
        page.wait_for_timeout(1500)  # a new key refreshes every voice picker; each keeps a voice the key may use
        page.locator("#dv-convert-voice input").click()
        page.locator("#dv-convert-voice [role=option]", has_text="gus").first.click()
        page.click("#dv-convert")
        status = _text(page, "#dv-convert-status", "Done|Error: (?!This API key)")  # not the first click's words
        assert "Done" in status and "gus" in status, status
        page.wait_for_selector("#dv-convert-result audio[src]", state="attached")
        # The player's own source, fetched as the page fetches it (a server URL or a blob: the page resolves both).
        body = page.locator("#dv-convert-result audio[src]").first.evaluate("""async (audio) => {
            const bytes = new Uint8Array(await (await fetch(audio.src)).arrayBuffer());
            let text = ''; for (const b of bytes) text += String.fromCharCode(b);
            return btoa(text);
        }""")
        answer = base64.b64decode(body)
        samples, rate = soundfile.read(io.BytesIO(answer), dtype="float32")
        assert rate == 22050 and abs(len(samples) - int(1.5 * 22050)) < 256 and np.sqrt(np.mean(samples ** 2)) > 1e-4
        assert page.locator("#dv-convert-original audio[src]").count() >= 1  # the original beside it, to compare
        browser.close()


def test_batch_tab_converts_an_uploaded_source(server, references, tmp_path):
    """A batch with a conversion row: its source recording is uploaded through the Batch tab's own input, the row checks
    out, the job runs, and the page hands out a zip with the converted audio (the source's length, not silent)."""
    source = tmp_path / "take-1.wav"
    soundfile.write(str(source), voiced_signal(1.5, 22050), 22050)
    sheet = tmp_path / "convert.csv"
    sheet.write_text("source,reference,output\ntake-1.wav,ref.wav,take-1-ref.wav\n", encoding="utf-8")
    with playwright_api.sync_playwright() as driver:
        browser, page = _open_tab(driver, server, ENROLL_KEY, "Batch")
        page.set_input_files("#dv-batch-csv input[type=file]", str(sheet))
        status = _text(page, "#dv-batch-checks", "rows")
        assert "cannot be made" in status, status  # nothing uploaded yet: the row says where to put its recording
        rows = page.inner_text("#dv-batch-rows")
        assert "Source recordings the CSV names" in rows and "'sources' file" not in rows, rows
        page.set_input_files("#dv-batch-refs input[type=file]", str(references["ref.wav"]))
        page.set_input_files("#dv-batch-sources input[type=file]", str(source))
        _text(page, "#dv-batch-rows", "^(?![\\s\\S]*Source recordings)[\\s\\S]*take-1")  # checked again with the uploads
        assert "All 1 rows can be made" in page.inner_text("#dv-batch-checks"), page.inner_text("#dv-batch-rows")
        page.click("#dv-batch-start")
        progress = _text(page, "#dv-batch-progress", "Done|Error|failed")
        assert "Done" in progress and "1 of 1 rows made" in progress, progress
        with page.expect_download() as fetched:
            page.click("#dv-batch-download")
        archive = zipfile.ZipFile(fetched.value.path())
        browser.close()
    assert {"take-1-ref.wav", "report.jsonl"} <= set(archive.namelist())
    samples, rate = soundfile.read(io.BytesIO(archive.read("take-1-ref.wav")), dtype="float32")
    assert rate == 22050 and abs(len(samples) - int(1.5 * 22050)) < 256 and np.sqrt(np.mean(samples ** 2)) > 1e-4


def _open_tab(driver, server, key: str, tab: str):
    """(browser, page): the page opened in Chromium with ``key`` entered and ``tab`` shown."""
    browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    page = browser.new_page(viewport={"width": 1100, "height": 860})
    page.set_default_timeout(WAIT)
    page.goto(server.url + "/ui/")
    page.wait_for_selector("#dv-enroll")
    page.locator("#dv-key :is(input, textarea)").fill(key)
    page.keyboard.press("Tab")
    page.get_by_role("tab", name=tab, exact=True).click()
    return browser, page


def _text(page, selector: str, pattern: str) -> str:
    page.wait_for_function("([sel, pat]) => { const e = document.querySelector(sel); return e && new RegExp(pat).test(e.innerText); }",
                           arg=[selector, pattern])
    return page.inner_text(selector)
