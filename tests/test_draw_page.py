"""The draw-a-digit page in a real browser: headless Chromium driven by Playwright.

``jmlp draw --no-browser --port 0`` runs as a user starts it (a subprocess, trained at start on
the bundled digits); the test draws on the pad with mouse and touch events and reads the page.
The browser is the system's Chromium (Debian: ``apt-get install chromium``; or set
``JMLP_CHROMIUM`` to an executable); Playwright never downloads one. Set
``JMLP_DRAW_SCREENSHOT=path.png`` to keep the screenshot (the README's is made so).
"""

import contextlib
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("JMLP_CHROMIUM") or shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_SECONDS = 180  # import, train on the digits, compile: about 10 s on 2 free cores
PAD = 280

pytestmark = [
    pytest.mark.slow,  # a headless browser in its own process
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium executable found (apt-get install chromium, or set JMLP_CHROMIUM)",
    ),
]


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    """Where the server's stderr goes (not a terminal)."""
    return tmp_path_factory.mktemp("draw") / "server.log"


@pytest.fixture(scope="module")
def server(server_log):
    """``jmlp draw`` in a subprocess, always killed at the end; yields its address."""
    log = server_log
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "jmlp", "draw", "--no-browser", "--port", "0"]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        url, deadline = None, time.monotonic() + STARTUP_SECONDS
        while url is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"jmlp draw is not serving (exit {proc.poll()}):\n{log.read_text()}")
            with contextlib.suppress(queue.Empty):
                url = re.search(r"http://127\.0\.0\.1:\d+/", lines.get(timeout=1))
        yield url.group(0)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        reader.join(timeout=30)
        proc.stdout.close()


@pytest.fixture(scope="module")
def page(server):
    """A touch-capable page on the server, every request it makes recorded in ``page.urls``,
    every console error and uncaught exception in ``page.errors``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(has_touch=True, viewport={"width": 960, "height": 640})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.urls, page.errors = [], []
        page.on("request", lambda request: page.urls.append(request.url))
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(server)
        page.wait_for_selector('body[data-ready="1"]', state="attached")
        yield page
        browser.close()


def settle(page) -> None:
    """Wait until no prediction request is in flight and nothing drawn is unsent."""
    page.wait_for_selector('body[data-pending="0"]', state="attached")


def mouse_stroke(page, points: list[tuple[float, float]]) -> None:
    """Press, move through ``points`` (pad pixels), release."""
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
    page.mouse.up()
    settle(page)


def finger_stroke(page, points: list[tuple[float, float]]) -> None:
    """The same with one finger: touch events through the DevTools protocol."""
    box = page.locator("#pad").bounding_box()
    cdp = page.context.new_cdp_session(page)
    kinds = ["touchStart"] + ["touchMove"] * (len(points) - 1)
    for kind, (x, y) in zip(kinds, points):
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": box["x"] + x, "y": box["y"] + y}]},
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    settle(page)


def clear(page) -> None:
    page.click("#clear")
    settle(page)


def bars(page) -> list[float]:
    """The probability bars' values, in class order."""
    return [
        float(v)
        for v in page.locator("#bars .bar").evaluate_all("bs => bs.map(b => b.dataset.value)")
    ]


VERTICAL = [(140, 40 + 10 * i) for i in range(21)]  # 200 pad pixels, top to bottom
CIRCLE = [
    (140 + 75 * math.sin(t), 140 - 95 * math.cos(t))
    for t in (2 * math.pi * i / 40 for i in range(41))
]


def test_the_page_shows_the_model_and_asks_for_nothing_elsewhere(page, server):
    assert "test accuracy" in page.inner_text("#model")
    assert page.locator("#bars .bar").count() == 10
    assert page.urls and all(url.startswith(server) for url in page.urls)


def test_a_vertical_stroke_reads_as_1(page):
    clear(page)
    mouse_stroke(page, VERTICAL)
    assert page.inner_text("#prediction") == "1"
    values = bars(page)
    assert sum(values) == pytest.approx(1, abs=1e-5)  # softmax outputs, float32
    assert max(range(10), key=values.__getitem__) == 1
    assert page.locator("#bars .bar-row.best .label").inner_text() == "1"


def test_a_circle_reads_as_0_with_every_bar_drawn(page, tmp_path):
    clear(page)
    mouse_stroke(page, CIRCLE)
    assert page.inner_text("#prediction") == "0"
    assert page.inner_text("#confidence").startswith("probability")
    widths = page.locator("#bars .bar").evaluate_all("bs => bs.map(b => b.style.width)")
    assert len(widths) == 10 and all(w.endswith("%") for w in widths)
    assert float(widths[0][:-1]) > 50
    shot = page.screenshot(path=str(tmp_path / "draw.png"))
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    if os.environ.get("JMLP_DRAW_SCREENSHOT"):
        Path(os.environ["JMLP_DRAW_SCREENSHOT"]).write_bytes(shot)


def test_a_finger_draws_too(page):
    clear(page)
    finger_stroke(page, VERTICAL)
    assert page.inner_text("#prediction") == "1"


def test_clear_empties_the_reading(page):
    mouse_stroke(page, VERTICAL)
    clear(page)
    assert page.inner_text("#prediction") == "\u2013"
    assert bars(page) == [0.0] * 10


def layout(page) -> list[dict]:
    """The boxes of the page's cards and of everything in the pad's card."""
    return page.locator("main > section, main > section:first-child *").evaluate_all(
        "es => es.map(e => JSON.parse(JSON.stringify(e.getBoundingClientRect())))"
    )


def test_nothing_moves_when_the_hint_goes_and_comes_back(page):
    clear(page)
    before = layout(page)
    assert page.locator("#status").is_visible()
    mouse_stroke(page, VERTICAL)
    assert not page.locator("#status").is_visible()  # hidden, its place kept
    assert layout(page) == before
    clear(page)
    assert page.locator("#status").is_visible() and layout(page) == before


def test_the_hidden_layer_caption_says_what_relu_can_produce(page):
    caption = page.inner_text("#hidden-caption")
    assert caption.startswith("128 units, relu (never negative)")
    assert "< 0" not in caption and "blue" not in caption


def test_the_page_logs_no_error(page):
    clear(page)
    mouse_stroke(page, CIRCLE)
    page.reload()
    page.wait_for_selector('body[data-ready="1"]', state="attached")
    assert page.errors == []


def test_the_training_progress_is_logged_in_whole_lines(server, server_log):
    log = server_log.read_text()
    assert "\r" not in log
    assert log.splitlines()[0] == "training on the 8x8 digits"
    assert any(line.startswith("epoch 30/30  loss ") for line in log.splitlines())
