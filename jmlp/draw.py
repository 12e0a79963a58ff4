"""Draw a digit: a local web page that shows, live, how a trained MLP reads what you draw.

The page (``draw_page.html``, served as it is: no external assets) posts the drawing pad's ink to
``POST /api/predict`` as ``{"ink": [[a, ...], ...]}``, rows of numbers in ``[0, 1]`` (the pad's
alpha channel). The server reduces it to the image format the model was trained on, in the units
of its training data (`digit_image`: 0..16 per cell for the digits, 0..255 for MNIST), applies the
training inputs' scaling ``(x - mean) / scale``, and answers with the image, the network's outputs
``h^L`` and the first hidden layer ``h^1``, computed by ``jmlp.forward`` jitted once.
``GET /api/model`` describes the model. Every bad request gets a 4xx status and
``{"error": message}`` (a body over MAX_BODY_BYTES a 413 at once, one not sent within
BODY_SECONDS a 408); the server keeps serving, and a client that leaves early is not reported.

Models: `train_default_model` (64-128-10 on scikit-learn's bundled 8x8 digits, a few seconds) or
`load_run_model` (a run folder of ``jmlp train --data digits`` or ``--data mnist:DIR``).
"""

import contextlib
import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from jmlp import data, optim, runs
from jmlp.checks import param_dtype
from jmlp.forward import forward, forward_cache
from jmlp.init import Params, init_params
from jmlp.metrics import accuracy
from jmlp.net import MLP
from jmlp.runs import load_run
from jmlp.train import fit

MAX_BODY_BYTES = 1 << 20  # a 280 x 280 pad is about 160 kB of JSON
MAX_SIDE = 1024  # rows and columns of ink accepted by the server
BODY_SECONDS = 5.0  # a request body must arrive within this many seconds (else 408)
LISTEN_BACKLOG = 128  # connections the system queues until the server accepts them
_DRAIN_BYTES = 16 << 20  # of an oversized body, at most this much is read and dropped after the 413
_CHUNK = 1 << 16  # bytes read from the socket at a time


# ----------------------------------------------------------------------------- the image


class Frame(NamedTuple):
    """How a data set's images were made from a pen's ink (see `digit_image`)."""

    side: int  # the image is (side, side)
    box: tuple[int, int]  # (rows, cols) the ink's bounding box is scaled into
    fill_height: bool  # True: the box's height is always filled (the width follows, capped)
    centre: str  # "box": the bounding box's centre, "mass": the ink's centre of mass, at the middle
    full: float  # value of a cell covered by ink


FRAMES = {
    # UCI optdigits (scikit-learn's digits): 32 x 32 bitmaps, every digit as tall as the frame,
    # at most 24 of 32 columns wide; on-pixels counted in 4 x 4 blocks, so 0..16 per cell.
    8: Frame(8, (8, 6), True, "box", 16.0),
    # MNIST: scaled to fit 20 x 20 (aspect kept), centre of mass at the middle of 28 x 28;
    # pixels 0..255, as stored in its IDX files.
    28: Frame(28, (20, 20), False, "mass", 255.0),
}


def _box_filter(n_out: int, n_in: int, start: float, step: float) -> np.ndarray:
    """``R (n_out, n_in)``: ``R[i, j] = |[start + i step, start + (i+1) step) & [j, j+1)| / step``.

    ``R @ a`` averages ``a`` over each output cell's interval (area resampling, zero outside).
    """
    lo = start + step * np.arange(n_out)[:, None]
    j = np.arange(n_in)[None, :]
    return np.clip(np.minimum(lo + step, j + 1) - np.maximum(lo, j), 0.0, None) / step


def _check_ink(ink: ArrayLike) -> np.ndarray:
    a = np.asarray(ink)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"ink: expected numbers, got dtype {a.dtype}")
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"ink: expected a non-empty 2-D array (rows of pixels), got {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise ValueError(f"ink: expected values in [0, 1], got [{a.min()}, {a.max()}]")
    return a


def digit_image(ink: ArrayLike, side: int = 8) -> np.ndarray:
    """The drawing ``ink (H, W)`` (0 blank .. 1 inked) as the data set's image ``(side, side)``.

    Pixel ``(r, c)`` covers ``[r, r+1) x [c, c+1)``. The ink's bounding box (``h x w`` pixels) is
    scaled by ``s_y`` and ``s_x`` pixels per cell, ``s_y = h / rows`` (``fill_height``) or
    ``max(h / rows, w / cols)``, and ``s_x = max(s_y, w / cols)`` with ``(rows, cols) =
    FRAMES[side].box``; its centre (or the ink's centre of mass) lands at the frame's middle.
    Each cell is ``full`` times the mean ink over its ``s_y x s_x`` area, so ink is conserved:
    ``sum(image) s_y s_x = full sum(ink)`` while the box lies inside the frame.

    - ``side=8``: scikit-learn's digits (UCI optdigits), cells 0..16.
    - ``side=28``: MNIST, cells 0..255.

    A blank drawing gives zeros.
    """
    if side not in FRAMES:
        raise ValueError(f"side: expected one of {tuple(FRAMES)}, got {side!r}")
    frame, a = FRAMES[side], _check_ink(ink)
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    if rows.size == 0:
        return np.zeros((side, side))
    h, w = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    box_rows, box_cols = frame.box
    s_y = h / box_rows if frame.fill_height else max(h / box_rows, w / box_cols)
    s_x = max(s_y, w / box_cols)
    if frame.centre == "mass":
        mass = a.sum()
        c_y = a.sum(axis=1) @ (np.arange(a.shape[0]) + 0.5) / mass
        c_x = a.sum(axis=0) @ (np.arange(a.shape[1]) + 0.5) / mass
    else:
        c_y, c_x = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    r_y = _box_filter(side, a.shape[0], c_y - side / 2 * s_y, s_y)
    r_x = _box_filter(side, a.shape[1], c_x - side / 2 * s_x, s_x)
    return frame.full * (r_y @ a @ r_x.T)


# ----------------------------------------------------------------------------- the model


class DigitModel(NamedTuple):
    """A classifier of ``(side, side)`` images; its input is ``x = (image.ravel() - mean) / std``.

    ``image`` is in the units of the training data (`digit_image`); ``mean`` and ``std`` are
    ``(side**2,)`` float64: the scaling its training inputs had (a run's ``x_mean, x_scale``).
    """

    net: MLP
    params: Params
    side: int
    mean: np.ndarray
    std: np.ndarray
    classes: tuple
    description: str


def digit_model(
    net: MLP, params: Params, mean: ArrayLike, std: ArrayLike, classes: tuple, description: str
) -> DigitModel:
    """A checked `DigitModel`: 64 (8 x 8) or 784 (28 x 28) inputs, one output per class."""
    side = round(net.sizes[0] ** 0.5)
    if side * side != net.sizes[0] or side not in FRAMES:
        raise ValueError(
            f"net: expected 64 (8 x 8 digits) or 784 (28 x 28 MNIST) inputs, got {net.sizes[0]}"
        )
    if net.sizes[-1] != len(classes):
        raise ValueError(
            f"classes: expected one per output ({net.sizes[-1]}), got {len(classes)}: {classes}"
        )
    mean = np.broadcast_to(np.asarray(mean, np.float64), (side * side,))
    std = np.broadcast_to(np.asarray(std, np.float64), (side * side,))
    return DigitModel(net, params, side, mean, std, tuple(classes), description)


def train_default_model(
    *, epochs: int = 30, seed: int = 0, report: Callable[[int, float], Any] | None = None
) -> tuple[DigitModel, float]:
    """64-128-10 (ReLU, softmax, cross-entropy, Adam 1e-3, batch 32) on the bundled 8x8 digits.

    Inputs are the pixels over 16 (``mean = 0, std = 16``); 1437 training and 360 test images
    (``jmlp.data.load("digits", seed=seed)``, not standardized). ``report(epoch, loss)`` after
    each epoch. **Returns:** the model and its accuracy on the 360 test images.
    """
    ds = data.load("digits", seed=seed, standardize=False)
    net = MLP((64, 128, 10), activation="relu", output_activation="softmax", loss="cross_entropy")
    key_init, key_fit = jax.random.split(jax.random.key(seed))
    callback = None if report is None else (lambda e, p, h: report(e, h["loss"][-1]))
    result = fit(
        net,
        init_params(key_init, net.sizes),
        optim.adam(1e-3),
        ds.x_train / 16,
        ds.y_train,
        epochs=epochs,
        batch_size=32,
        key=key_fit,
        callback=callback,
    )
    test = float(accuracy(net, result.params, ds.x_test / 16, ds.y_test))
    text = f"64-128-10 ReLU MLP, 8x8 digits, {epochs} epochs: test accuracy {test:.1%}"
    return digit_model(net, result.params, 0.0, 16.0, ds.classes, text), test


def load_run_model(folder: str | Path) -> DigitModel:
    """The model of a run folder written by ``jmlp train --data digits`` or ``--data mnist:DIR``:
    :func:`jmlp.load_run`'s net, params and input statistics ``x_mean, x_scale`` (the training
    split's mean and scale for digits; 0 and 255 for MNIST, whose IDX pixels are 0..255)."""
    folder = Path(folder)
    try:
        name = str(runs.read_config(runs.config_path(folder)).get("data"))
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"run: {folder} is not a jmlp run folder ({err})") from None
    if name != "digits" and not name.startswith("mnist:"):
        raise ValueError(
            f"run: {folder} was trained on {name!r}; draw reads digits and mnist:DIR runs"
        )
    try:
        net, params, prep = load_run(folder)
    except (OSError, ValueError) as err:
        raise ValueError(f"run: {folder} is not a jmlp run folder ({err})") from None
    text = f"{'-'.join(map(str, net.sizes))} MLP from {folder} (trained on {name})"
    return digit_model(net, params, prep.x_mean, prep.x_scale, prep.classes, text)


def make_predictor(model: DigitModel) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``x (n_in,) -> (h^L (n_out,), h^1 (n_1,))``: ``jmlp.forward`` jitted once, compiled here.

    ``h^1`` is empty for a net without a hidden layer."""
    net = model.net

    @jax.jit
    def outputs(params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = forward_cache(net, params, x[None]).h
        return forward(net, params, x), h[1][0] if len(h) > 2 else jnp.zeros(0, x.dtype)

    params = model.params
    x0 = jnp.zeros(net.sizes[0], params[0]["W"].dtype)
    jax.block_until_ready(outputs(params, x0))

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, h = outputs(params, jnp.asarray(x, x0.dtype))
        return np.asarray(y), np.asarray(h)

    return predict


def model_inputs(model: DigitModel, image: np.ndarray) -> np.ndarray:
    """The network's input ``(side**2,)`` for ``image (side, side)`` in the training data's units:
    ``(image.ravel() - mean) / std`` in the params' dtype, the arithmetic of training
    (:meth:`jmlp.data.Preprocessing.inputs`)."""
    prep = data.Preprocessing(model.mean, model.std)
    return prep.inputs(image.reshape(1, -1), param_dtype(model.params))[0]


def _hidden_can_be_negative(net: MLP) -> bool:
    """Whether ``h^1`` can hold negative values: its activation's least value on ``[-10, 10]``."""
    z = jnp.linspace(-10.0, 10.0, 4001)
    return bool(jnp.min(net.activations[0].fn(z)) < 0)


def model_info(model: DigitModel) -> dict[str, Any]:
    """What ``GET /api/model`` returns; ``hidden``: the first hidden layer's activation and
    whether its values can be negative (None without a hidden layer)."""
    net = model.net
    hidden = None
    if len(net.sizes) > 2:
        hidden = {
            "activation": net.hidden_activations[0],
            "negative": _hidden_can_be_negative(net),
        }
    return {
        "description": model.description,
        "side": model.side,
        "full": FRAMES[model.side].full,
        "classes": [str(c) for c in model.classes],
        "sizes": list(model.net.sizes),
        "probabilities": model.net.output_activation == "softmax",
        "hidden": hidden,
    }


def answer(model: DigitModel, predict: Callable, ink: ArrayLike) -> dict[str, Any]:
    """What ``POST /api/predict`` returns for ``ink``: the image; outputs unless it is blank."""
    image = digit_image(ink, model.side)
    reply: dict[str, Any] = {"input": np.round(image, 4).tolist(), "empty": not image.any()}
    if reply["empty"]:
        return reply | {"prediction": None, "outputs": None, "hidden": None}
    y, h = predict(model_inputs(model, image))
    best = int(np.argmax(y))
    return reply | {
        "prediction": str(model.classes[best]),
        "outputs": [float(v) for v in y],
        "hidden": np.round(h.astype(np.float64), 4).tolist(),
    }


# ----------------------------------------------------------------------------- the server


class RequestError(Exception):
    """A bad request: its HTTP status (4xx) and a message for the client."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number in JSON")


def parse_ink(body: bytes) -> np.ndarray:
    """The ``ink`` array of a ``POST /api/predict`` body, or a RequestError saying what is wrong."""
    try:
        request = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {err}") from None
    except RecursionError:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "malformed JSON: nested too deeply (ink is 2-D)"
        ) from None
    if not isinstance(request, dict) or "ink" not in request:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, 'expected a JSON object {"ink": [[0..1, ...], ...]}'
        )
    try:
        ink = np.asarray(request["ink"])
    except ValueError:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "ink: expected rows of equal length (a 2-D array)"
        ) from None
    if ink.ndim == 2 and max(ink.shape) > MAX_SIDE:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"ink: expected at most {MAX_SIDE} x {MAX_SIDE}, got {ink.shape}",
        )
    try:
        return _check_ink(ink)
    except (TypeError, ValueError) as err:
        raise RequestError(HTTPStatus.BAD_REQUEST, str(err)) from None


# The page's icon (a 7 on blue), so that the browser's request for one is answered.
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#2563eb"/>'
    b'<path d="M4.5 4h7l-4 8.5" fill="none" stroke="#fff" stroke-width="2"/></svg>'
)


class DrawServer(ThreadingHTTPServer):
    """The page, ``GET /api/model`` and ``POST /api/predict`` for one model (one thread each)."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], model: DigitModel):
        self.model = model
        self.predict = make_predictor(model)
        self.page = resources.files("jmlp").joinpath("draw_page.html").read_bytes()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left (connection reset or closed, timed out) is no error: nothing is
        printed. Anything else is one line on stderr, not a traceback."""
        err = sys.exc_info()[1]
        if not isinstance(err, (ConnectionError, TimeoutError)):
            print(f"jmlp draw: {type(err).__name__}: {err}", file=sys.stderr, flush=True)


class _Handler(BaseHTTPRequestHandler):
    server: DrawServer
    server_version = "jmlp-draw"
    timeout = 30  # seconds a client may stall before its request line and headers are complete

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the address, not a line per request."""

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        )
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "POST" if self._path() == "/api/predict" else "GET, HEAD")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message})

    def _path(self) -> str:
        return urlsplit(self.path).path

    def _receive(self, size: int) -> Iterator[bytes]:
        """The next ``size`` bytes of the body in chunks, fewer if the client closes first.

        **Raises:** TimeoutError when they take longer than BODY_SECONDS in all.
        """
        deadline = time.monotonic() + BODY_SECONDS
        try:
            while size > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(size, _CHUNK))
                if not chunk:
                    return
                size -= len(chunk)
                yield chunk
        finally:
            self.connection.settimeout(self.timeout)

    def _body(self) -> bytes:
        """The request body: at most MAX_BODY_BYTES (else 413, unread), within BODY_SECONDS."""
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if not (length.isascii() and length.isdigit()):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length: not a size: {length!r}")
        size = int(length)
        if size > MAX_BODY_BYTES:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request body of {size} bytes; at most {MAX_BODY_BYTES}",
            )
        try:
            body = b"".join(self._receive(size))
        except TimeoutError:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request body ({size} bytes) did not arrive within {BODY_SECONDS:g} s",
            ) from None
        if len(body) < size:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"the request body ended after {len(body)} of {size} bytes"
            )
        return body

    def _drain(self) -> None:
        """Read and drop up to _DRAIN_BYTES of an unread body (for BODY_SECONDS at most), so that
        closing the connection does not reset it before the client has read the answer."""
        self.close_connection = True
        size = min(int(self.headers["Content-Length"]), _DRAIN_BYTES)
        with contextlib.suppress(TimeoutError, ConnectionError):
            for _ in self._receive(size):
                pass

    def do_GET(self) -> None:
        path = self._path()
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path == "/api/model":
            self._json(HTTPStatus.OK, model_info(self.server.model))
        elif path == "/favicon.ico":
            self._send(HTTPStatus.OK, FAVICON, "image/svg+xml")
        elif path == "/api/predict":
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "/api/predict takes POST")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such path: {path} (try /)")

    do_HEAD = do_GET  # the same status and headers, no body (see _send)

    def do_POST(self) -> None:
        path = self._path()
        if path != "/api/predict":
            known = path in ("/", "/index.html", "/api/model", "/favicon.ico")
            status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND
            self._error(status, f"POST {path}: only /api/predict takes POST")
            return
        try:
            ink = parse_ink(self._body())
            reply = answer(self.server.model, self.server.predict, ink)
        except RequestError as err:
            self._error(err.status, str(err))
            if err.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                self._drain()
        except ConnectionError:
            raise  # the client left: nobody to answer (DrawServer.handle_error stays quiet)
        except Exception as err:  # noqa: BLE001  (a bug, not the client's: say so, keep serving)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(err).__name__}: {err}")
        else:
            self._json(HTTPStatus.OK, reply)

    def _not_allowed(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


def make_server(model: DigitModel, host: str = "127.0.0.1", port: int = 8765) -> DrawServer:
    """A `DrawServer` listening on ``host:port`` (port 0: any free port); ``.serve_forever()``."""
    return DrawServer((host, port), model)
