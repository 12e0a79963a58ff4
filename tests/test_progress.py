"""jmlp.progress: a few lines to a file, one redrawn line on a terminal, a rate that leaves out
the compiling first report."""

import io

import jmlp
from jmlp.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_about_ten_lines_for_any_number_of_epochs():
    out = io.StringIO()
    bar = Progress(200, stream=out)
    for epoch in range(1, 201):
        bar.update(epoch, f"loss {1 / epoch:.4g}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert 9 <= len(lines) <= 11
    assert lines[-1].startswith("epoch 200/200  loss 0.005")


def test_the_last_report_is_written_once():
    out = io.StringIO()
    bar = Progress(3, stream=out)
    for epoch in (1, 2):
        bar.update(epoch, "x")
    bar.close()  # stopped early: the last report printed at close
    assert out.getvalue().splitlines()[-1].startswith("epoch 2/3  x")


def test_a_terminal_gets_one_line_redrawn_in_place():
    out = Terminal()
    bar = Progress(5, stream=out)
    for epoch in range(1, 6):
        bar.update(epoch, "loss 1")
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.startswith("\repoch 1/5") and "epoch 5/5" in text


def test_the_rate_leaves_out_the_first_report():
    bar = Progress(100)
    bar.first = (10.0, 1)  # the first report (compilation included) at t = 10 s, epoch 1
    assert bar.rate(1, 10.0) is None
    assert bar.rate(11, 12.0) == 5.0  # 10 epochs in the 2 s after it
    line = bar.format(11, "loss 1", 12.0)
    assert "5 epoch/s, 00:18 left" in line  # 89 epochs to go at 5 per second


def test_fit_reports_through_it(capsys):
    net = jmlp.MLP((2, 3, 2), "tanh", "softmax", "cross_entropy")
    import jax
    import numpy as np
    import optax

    params = jmlp.init_params(jax.random.key(0), net.sizes)
    x, y = np.random.default_rng(0).normal(size=(8, 2)), np.arange(8) % 2
    result = jmlp.fit(net, params, optax.sgd(0.1), x, y, epochs=30, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"epoch 30/30  loss {result.history['loss'][-1]:.4g}")
    assert len(err) <= 11
