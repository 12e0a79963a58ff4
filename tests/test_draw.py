"""jmlp.draw: the drawing -> image reduction, the run-folder loader and the HTTP server.

Expected images are worked by hand from the frame definitions (optdigits: the ink's bounding box
fills the 8 rows, at most 6 of 8 columns wide, cells 0..16; MNIST: fit into 20 x 20, centre of
mass at the middle of 28 x 28, pixels 0..255 as in its IDX files). The server runs in a thread of
this process on a free port.
"""

import contextlib
import http.client
import json
import re
import select
import socket
import struct
import threading
import time

import jax
import numpy as np
import pytest
from conftest import TOL

import jmlp
from jmlp import draw
from jmlp.cli import main

PAD = 280  # the page's drawing pad is 280 x 280
TINY_RUN = ["--epochs", "1", "--hidden", "8", "--seed", "2", "--quiet"]


def stroke_1() -> np.ndarray:
    """A vertical bar, rows 40..239 and columns 130..149 (200 x 20 pixels), on the pad."""
    ink = np.zeros((PAD, PAD))
    ink[40:240, 130:150] = 1.0
    return ink


# ----------------------------------------------------------------------------- digit_image


def test_a_vertical_stroke_is_a_tall_thin_8x8_pattern():
    # 25 pad pixels per cell (200 rows / 8); the frame's 8 columns span 140 -+ 100, so the bar
    # (columns 90..110 of it) covers 10/25 of cells 3 and 4 in every row: 16 * 0.4 = 6.4.
    expected = np.zeros((8, 8))
    expected[:, 3:5] = 6.4
    np.testing.assert_allclose(draw.digit_image(stroke_1(), 8), expected, rtol=1e-12, atol=1e-12)


def stroke_1_mnist() -> np.ndarray:
    """What `stroke_1` is in MNIST's format, by hand: the 200 x 20 box is scaled by 1/10 into
    20 x 2 pixels, its centre of mass (the bar's middle) at (14, 14): rows 4..23, columns 13 and
    14, fully inked (255, MNIST's darkest pixel)."""
    image = np.zeros((28, 28))
    image[4:24, 13:15] = 255.0
    return image


def test_a_vertical_stroke_is_20_rows_of_2_columns_in_28x28():
    expected = stroke_1_mnist()
    np.testing.assert_allclose(draw.digit_image(stroke_1(), 28), expected, rtol=1e-12, atol=1e-12)


def test_a_full_square_fills_the_digits_frame_at_16():
    # 40 x 40 of ink: 5 rows per cell; 40 / 6 columns per cell (the width cap), so columns 1..6
    # are covered wholly (16) and columns 0 and 7 not at all, as in the digits set.
    expected = np.zeros((8, 8))
    expected[:, 1:7] = 16.0
    ink = np.zeros((100, 100))
    ink[30:70, 10:50] = 1.0
    np.testing.assert_allclose(draw.digit_image(ink, 8), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("side", "full", "per_cell"), [(8, 16.0, (20.0, 20.0)), (28, 255.0, (8.0, 8.0))]
)
def test_ink_is_conserved_and_within_the_scale(side, full, per_cell):
    # Random grey ink in a 160 x 100 box (its corners inked, so the box is exactly that):
    # 8x8: 160 / 8 = 20 rows per cell, max(20, 100 / 6) = 20 columns; 28x28: 160 / 20 = 8 each.
    # Ink is conserved: sum(image) * s_y * s_x = full * sum(ink).
    rng = np.random.default_rng(side)
    ink = np.zeros((PAD, PAD))
    ink[60:220, 90:190] = rng.uniform(0, 1, (160, 100)) * (rng.uniform(size=(160, 100)) < 0.3)
    ink[[60, 60, 219, 219], [90, 189, 90, 189]] = 1.0
    image = draw.digit_image(ink, side)
    s_y, s_x = per_cell
    np.testing.assert_allclose(image.sum() * s_y * s_x, full * ink.sum(), rtol=1e-12)
    assert image.min() >= 0 and image.max() <= full


@pytest.mark.parametrize("side", [8, 28])
def test_the_image_does_not_depend_on_where_or_how_large_one_draws(side):
    small = stroke_1()[::2, ::2]  # the same bar at half size: 100 x 10, top left at (20, 65)
    moved = np.roll(small, (15, -41), axis=(0, 1))  # no wrap: rows 35..134 of 140
    large = np.kron(small, np.ones((3, 3)))
    reference = draw.digit_image(small, side)
    np.testing.assert_allclose(draw.digit_image(moved, side), reference, atol=1e-12)
    np.testing.assert_allclose(draw.digit_image(large, side), reference, atol=1e-12)


def test_mnist_centres_the_centre_of_mass():
    # An L: its centre of mass is off its box's centre. Each output cell's ink sits within half
    # a cell of the cell's centre, so the image's centre of mass is within 0.5 px of (14, 14).
    ink = np.zeros((PAD, PAD))
    ink[30:230, 20:45] = 1.0
    ink[205:230, 20:160] = 1.0
    image = draw.digit_image(ink, 28)
    centre = (np.arange(28) + 0.5) @ image.sum(axis=1), (np.arange(28) + 0.5) @ image.sum(axis=0)
    np.testing.assert_allclose(np.array(centre) / image.sum(), [14, 14], atol=0.5)


@pytest.mark.parametrize("side", [8, 28])
def test_a_blank_drawing_is_a_blank_image(side):
    np.testing.assert_array_equal(draw.digit_image(np.zeros((PAD, PAD)), side), 0)


@pytest.mark.parametrize(
    ("ink", "side", "error", "needle"),
    [
        (np.zeros(64), 8, ValueError, "2-D"),
        (np.zeros((0, 5)), 8, ValueError, "2-D"),
        (np.array([["a", "b"]]), 8, TypeError, "numbers"),
        (np.full((4, 4), 1.5), 8, ValueError, "[0, 1]"),
        (np.full((4, 4), -0.5), 8, ValueError, "[0, 1]"),
        (np.full((4, 4), np.nan), 8, ValueError, "[0, 1]"),
        (np.zeros((4, 4)), 16, ValueError, "side"),
    ],
)
def test_bad_ink_is_named(ink, side, error, needle):
    with pytest.raises(error, match=needle.replace("[", r"\[")):
        draw.digit_image(ink, side)


# ----------------------------------------------------------------------------- run folders


def test_a_digits_run_is_loaded_with_its_standardization(tmp_path):
    assert main(["train", "--data", "digits", *TINY_RUN, "--out", str(tmp_path)]) == 0
    model = draw.load_run_model(tmp_path)
    assert (model.side, model.net.sizes, model.classes) == (8, (64, 8, 10), tuple(range(10)))
    # the run's inputs, standardized by jmlp.data itself, against the loader's mean and std
    raw = jmlp.data.load("digits", seed=2, standardize=False).x_test
    scaled = jmlp.data.load("digits", seed=2).x_test
    np.testing.assert_allclose((raw - model.mean) / model.std, scaled, **TOL["float32"])
    saved = jmlp.load_checkpoint(tmp_path / "checkpoint.npz", like_params=model.params).params
    jax.tree.map(np.testing.assert_array_equal, model.params, saved)


def write_mnist(folder, rng) -> None:
    """Four tiny IDX files in MNIST's layout: 40 training images, the first `stroke_1_mnist`
    (label 1), the rest random pixels 0..255; 10 test images; labels 0..9."""
    folder.mkdir()
    train = rng.integers(0, 256, (40, 28, 28)).astype(np.uint8)
    train[0] = stroke_1_mnist().astype(np.uint8)
    sets = {"train": (train, np.arange(40) % 10), "t10k": (train[-10:], np.arange(10))}
    for stem, (images, labels) in sets.items():
        jmlp.data.write_idx(folder / f"{stem}-images-idx3-ubyte", images)
        jmlp.data.write_idx(folder / f"{stem}-labels-idx1-ubyte", labels.astype(np.uint8))


def test_an_mnist_run_sees_a_drawing_as_it_saw_its_training_images(tmp_path):
    # Drawing the first training image must give the network the very input training gave it:
    # the IDX pixels as jmlp.data read them (p / 255), not the image in other units.
    write_mnist(tmp_path / "mnist", np.random.default_rng(0))
    out = tmp_path / "run"
    args = ["train", "--data", f"mnist:{tmp_path / 'mnist'}", "--epochs", "2", "--hidden", "8"]
    assert main([*args, "--batch-size", "8", "--quiet", "--out", str(out)]) == 0
    model = draw.load_run_model(out)
    assert (model.side, model.net.sizes) == (28, (784, 8, 10))
    reply = draw.answer(model, draw.make_predictor(model), stroke_1())
    np.testing.assert_allclose(reply["input"], stroke_1_mnist(), atol=5e-5)
    x = jmlp.data.load_mnist(tmp_path / "mnist").x_train[0]
    np.testing.assert_array_equal(x, stroke_1_mnist().ravel() / 255)
    y = np.asarray(jmlp.forward(model.net, model.params, x))
    np.testing.assert_allclose(reply["outputs"], y, **TOL["float32"])
    assert reply["prediction"] == str(np.argmax(y))


def test_the_input_is_the_image_less_the_mean_over_the_std():
    # A non-zero mean and a std other than 1 per pixel: x = (image - mean) / std, worked here.
    rng = np.random.default_rng(3)
    net = jmlp.MLP((64, 12, 10), "tanh", "softmax", "cross_entropy")
    params = jmlp.init_params(jax.random.key(1), net.sizes)
    mean, std = rng.uniform(2, 6, 64), rng.uniform(0.5, 3, 64)
    model = draw.digit_model(net, params, mean, std, tuple(range(10)), "tanh 64-12-10")
    reply = draw.answer(model, draw.make_predictor(model), stroke_1())
    image = np.zeros((8, 8))
    image[:, 3:5] = 6.4  # see test_a_vertical_stroke_is_a_tall_thin_8x8_pattern
    x = ((image.ravel() - mean) / std).astype(np.float32)
    np.testing.assert_allclose(reply["outputs"], jmlp.forward(net, params, x), **TOL["float32"])
    h = np.tanh(x @ np.asarray(params[0]["W"]) + np.asarray(params[0]["b"]))
    np.testing.assert_allclose(reply["hidden"], h, rtol=TOL["float32"]["rtol"], atol=1e-4)


def test_a_run_on_other_data_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"data": "iris", "sizes": [4, 8, 3]}))
    with pytest.raises(ValueError, match="trained on 'iris'"):
        draw.load_run_model(tmp_path)
    with pytest.raises(ValueError, match="not a jmlp run folder"):
        draw.load_run_model(tmp_path / "nothing")
    (tmp_path / "config.json").write_text(json.dumps({"data": "digits", "activation": "relu"}))
    with pytest.raises(ValueError, match="no run folder or checkpoint"):
        draw.load_run_model(tmp_path)


# ----------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def model() -> draw.DigitModel:
    """A 64-16-10 net with random weights: the server's arithmetic, not its accuracy, is tested."""
    net = jmlp.MLP((64, 16, 10), "relu", "softmax", "cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes)
    return draw.digit_model(net, params, 0.0, 16.0, tuple(range(10)), "random 64-16-10")


@contextlib.contextmanager
def serving(server: draw.DrawServer):
    """``server`` serving in a thread until the block ends."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(model):
    with serving(draw.make_server(model, port=0)) as server:
        yield server


def request(server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    """``(status, headers, body)`` of one request to the server."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def predict(server, ink) -> dict:
    status, _, body = request(server, "POST", "/api/predict", json.dumps({"ink": ink}).encode())
    assert status == 200, body
    return json.loads(body)


def test_the_server_listens_on_this_machine_only_by_default(server):
    assert server.server_address[0] == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.server_address[1]}/"


def test_the_page_is_served_with_nothing_from_elsewhere(server):
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert '<canvas id="pad"' in page and 'id="clear"' in page
    links = re.findall(r"""(?:src|href)=["']?([^"' >]*)""", page)
    assert links == ["favicon.ico"]  # the icon, on this server; nothing else is loaded
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_the_model_is_described(server, model):
    status, _, body = request(server, "GET", "/api/model")
    info = json.loads(body)
    assert status == 200
    assert info["side"] == 8 and info["full"] == 16 and info["sizes"] == [64, 16, 10]
    assert info["classes"] == [str(k) for k in range(10)] and info["probabilities"] is True
    assert info["hidden"] == {"activation": "relu", "negative": False}  # ReLU: h >= 0


@pytest.mark.parametrize(
    ("activation", "negative"),
    [("sigmoid", False), ("softplus", False), ("tanh", True), ("leaky_relu", True), ("gelu", True)],
)
def test_the_model_says_whether_its_hidden_values_can_be_negative(activation, negative):
    net = jmlp.MLP((64, 4, 10), activation, "softmax", "cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes)
    info = draw.model_info(draw.digit_model(net, params, 0.0, 16.0, tuple(range(10)), "4 units"))
    assert info["hidden"] == {"activation": activation, "negative": negative}


def test_a_model_without_a_hidden_layer_has_no_hidden_values():
    net = jmlp.MLP((64, 10), output_activation="softmax", loss="cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes)
    model = draw.digit_model(net, params, 0.0, 16.0, tuple(range(10)), "64-10")
    assert draw.model_info(model)["hidden"] is None


def test_a_prediction_is_the_forward_pass_of_the_scaled_image(server, model):
    reply = predict(server, stroke_1().tolist())
    image = draw.digit_image(stroke_1(), 8)
    np.testing.assert_allclose(reply["input"], image, atol=5e-5)  # sent rounded to 4 decimals
    x = (image.ravel() / 16).astype(np.float32)
    y = np.asarray(jmlp.forward(model.net, model.params, x))
    h = np.maximum(x @ np.asarray(model.params[0]["W"]) + np.asarray(model.params[0]["b"]), 0)
    np.testing.assert_allclose(reply["outputs"], y, **TOL["float32"])
    np.testing.assert_allclose(reply["hidden"], h, rtol=TOL["float32"]["rtol"], atol=1e-4)
    assert reply["prediction"] == str(np.argmax(y)) and reply["empty"] is False


def test_a_blank_pad_gets_no_prediction(server):
    reply = predict(server, np.zeros((PAD, PAD)).tolist())
    assert reply["empty"] is True and reply["prediction"] is None and reply["outputs"] is None
    np.testing.assert_array_equal(reply["input"], np.zeros((8, 8)))


BAD_REQUESTS = [
    ("POST", "/api/predict", b'{"ink": [[0, 1]', 400, "malformed JSON"),
    ("POST", "/api/predict", b'{"ink": [[NaN]]}', 400, "NaN"),
    ("POST", "/api/predict", b"[[0, 1]]", 400, "JSON object"),
    ("POST", "/api/predict", b'{"ink": [[0, 1], [0]]}', 400, "rows of equal length"),
    ("POST", "/api/predict", b'{"ink": [0, 1, 0]}', 400, "2-D"),
    ("POST", "/api/predict", json.dumps({"ink": [[0]] * 1025}).encode(), 400, "at most"),
    ("POST", "/api/predict", b'{"ink": [["a", "b"]]}', 400, "numbers"),
    ("POST", "/api/predict", b'{"ink": [[true, false]]}', 400, "numbers"),
    ("POST", "/api/predict", b'{"ink": [[0, 255]]}', 400, "[0, 1]"),
    ("POST", "/api/predict", b" " * (3 << 20), 413, "at most"),
    ("POST", "/api/predict", b'{"ink": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "deeply"),
    ("GET", "/nowhere", None, 404, "no such path"),
    ("POST", "/nowhere", b"{}", 404, "only /api/predict"),
    ("GET", "/api/predict", None, 405, "POST"),
    ("PUT", "/", b"{}", 405, "PUT"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_with_a_message(server, method, path, body, status, needle):
    got, headers, reply = request(server, method, path, body)
    assert got == status and headers["Content-Type"] == "application/json"
    assert needle in json.loads(reply)["error"]
    assert predict(server, stroke_1().tolist())["prediction"] is not None  # still serving


def test_a_body_without_a_length_gets_411(server):
    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        reply = b"".join(iter(lambda: sock.recv(4096), b"")).decode()
    assert reply.startswith("HTTP/1.0 411")
    assert "a Content-Length header is required" in reply


def raw_request(server, head: bytes, body: bytes = b"", seconds: float = 10.0) -> tuple[str, float]:
    """Send ``head`` and ``body`` on a socket, leave it open; ``(reply, seconds until it came)``:
    the reply read up to the end of its JSON body."""
    with socket.create_connection(server.server_address[:2], timeout=seconds) as sock:
        sock.sendall(head + body)
        start, reply = time.monotonic(), b""
        while not reply.endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply.decode(), time.monotonic() - start


def post_head(length: int) -> bytes:
    return f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()


def test_an_oversized_body_gets_413_at_once(server):
    # Announced and never sent: the answer comes before any of it would be read.
    reply, seconds = raw_request(server, post_head(10**9))
    assert reply.startswith("HTTP/1.0 413") and f"at most {draw.MAX_BODY_BYTES}" in reply
    assert seconds < draw.BODY_SECONDS / 2


def test_a_stalled_body_gets_408_soon(server, monkeypatch):
    monkeypatch.setattr(draw, "BODY_SECONDS", 0.5)
    reply, seconds = raw_request(server, post_head(100), b'{"ink": [[0,')
    assert reply.startswith("HTTP/1.0 408") and "did not arrive within 0.5 s" in reply
    assert 0.4 < seconds < 3


def test_a_body_shorter_than_announced_gets_400(server):
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(post_head(100) + b'{"ink": [[0]]}')
        sock.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: sock.recv(4096), b"")).decode()
    assert reply.startswith("HTTP/1.0 400") and "ended after 14 of 100 bytes" in reply


def test_head_is_answered_like_get_without_a_body(server):
    status, headers, body = request(server, "HEAD", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and body == b""
    assert int(headers["Content-Length"]) == len(request(server, "GET", "/")[2])


def test_the_icon_is_served(server):
    status, headers, body = request(server, "GET", "/favicon.ico")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml"
    assert body.startswith(b"<svg") and body.endswith(b"</svg>")


def test_fifty_connections_at_once_are_queued_and_all_answered(model):
    # 50 clients connect before the server accepts any: the system must queue them all (a
    # listen backlog of 5 drops the rest); then each gets its answer.
    server = draw.make_server(model, port=0)
    socks = [socket.socket() for _ in range(50)]
    try:
        for sock in socks:
            sock.setblocking(False)
            sock.connect_ex(server.server_address[:2])
        waiting, deadline = set(socks), time.monotonic() + 3
        while waiting and time.monotonic() < deadline:
            _, connected, _ = select.select([], list(waiting), [], 0.1)
            waiting -= {
                s for s in connected if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            }
        assert not waiting, f"{len(waiting)} of 50 connections not accepted by the system"
        with serving(server):
            for sock in socks:
                sock.setblocking(True)
                sock.settimeout(30)
                sock.sendall(b"GET /api/model HTTP/1.1\r\nHost: x\r\n\r\n")
            replies = [b"".join(iter(lambda s=sock: s.recv(4096), b"")) for sock in socks]
        assert all(r.startswith(b"HTTP/1.0 200") and b'"side": 8' in r for r in replies)
    finally:
        for sock in socks:
            sock.close()


def test_a_client_that_leaves_early_is_not_reported(model, capfd):
    # The client sends a drawing and resets the connection at once: the server's read or write
    # fails; that is no error of the server's, so nothing (no traceback) is printed.
    server, done = draw.make_server(model, port=0), threading.Event()
    shutdown_request = server.shutdown_request
    server.shutdown_request = lambda request: (shutdown_request(request), done.set())
    body = json.dumps({"ink": stroke_1().tolist()}).encode()
    with serving(server):
        for _ in range(3):
            done.clear()
            sock = socket.create_connection(server.server_address[:2], timeout=10)
            sock.sendall(post_head(len(body)) + body)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, not an orderly close
            assert done.wait(10)
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.count("\n") <= 1, err


class _NoServer:
    """Stands in for the draw server: `jmlp draw`'s progress ends before serving."""

    url = "http://127.0.0.1:0/"

    def serve_forever(self) -> None:
        pass

    def server_close(self) -> None:
        pass


def test_the_training_progress_is_whole_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(jmlp.draw, "make_server", lambda model, host, port: _NoServer())
    assert main(["draw", "--no-browser", "--epochs", "3", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0] == "training on the 8x8 digits" and lines[-1].startswith("epoch 3/3  loss ")
