"""Matplotlib figures to PNG bytes and files (Agg backend, atomic writes)."""

from __future__ import annotations

import io
from pathlib import Path

from .._io import atomic_write_bytes


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend. Imported on first drawing, not with the module:
    pyplot picks a GUI backend when it loads, so Agg must be chosen before (headless machines,
    worker processes), and commands that draw nothing do not pay for loading it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, **savefig) -> bytes:
    """The PNG bytes of ``fig``; the figure is closed."""
    plt = pyplot()

    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path, **savefig) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (temporary file, then rename); closes it."""
    out = Path(path)
    atomic_write_bytes(out, figure_png(fig, **savefig))
    return out
