"""``jmlp draw``: a local web page to draw a digit on and watch a trained MLP read it."""

import argparse
import ipaddress
import sys
import webbrowser

from jmlp.cli.options import positive_int
from jmlp.progress import Progress

DRAW_EPILOG = """examples:
  jmlp draw                                 # trains on the bundled 8x8 digits (about 10 s)
  jmlp draw --run runs/digits-20250101-120000
  jmlp draw --run runs/mnist --port 8000 --no-browser

--run takes the folder of 'jmlp train --data digits' or 'jmlp train --data mnist:DIR'.
The page needs nothing from the internet. Stop the server with Ctrl-C."""


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {text!r}")
    return int(text)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "draw",
        help="a local page to draw a digit on and see the network read it",
        description="Serve a local page to draw a digit on and watch a trained MLP read it.",
        epilog=DRAW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a(
        "--run",
        dest="run_folder",
        metavar="RUN_FOLDER",
        help="a run folder of 'jmlp train' (default: train one now)",
    )
    a("--port", type=port, default=8765, help="TCP port (default 8765; 0: any free port)")
    a("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    a("--no-browser", action="store_true", help="print the address, do not open a browser")
    a(
        "--epochs",
        type=positive_int,
        default=30,
        metavar="N",
        help="epochs of the model trained at start (no --run; default 30)",
    )
    a(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of that model's split and init (default 0)",
    )
    p.set_defaults(run=run)


def _train(epochs: int, seed: int):
    """The default model, its progress on stderr (redrawn on a terminal, whole lines else)."""
    from jmlp.draw import train_default_model

    print("training on the 8x8 digits", file=sys.stderr, flush=True)
    progress = Progress(epochs)
    model, _ = train_default_model(
        epochs=epochs,
        seed=seed,
        report=lambda epoch, loss: progress.update(epoch, f"loss {loss:.4f}"),
    )
    progress.close()
    return model


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    """``jmlp draw``: load or train the model, serve the page until Ctrl-C."""
    from jmlp import draw as page  # its server's modules are loaded for this verb only

    if args.run_folder is not None:
        model = page.load_run_model(args.run_folder)
    else:
        model = _train(args.epochs, args.seed)
    try:
        server = page.make_server(model, args.host, args.port)
    except OSError as err:
        raise OSError(f"--host/--port: cannot listen on {args.host}:{args.port}: {err}") from None
    print(model.description, flush=True)
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: other machines can reach this page", flush=True)
    print(f"jmlp draw: serving on {server.url} (Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("jmlp draw: stopped", flush=True)
    finally:
        server.server_close()
    return 0
