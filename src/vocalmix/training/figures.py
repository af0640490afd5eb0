"""Figures as PNG bytes (matplotlib, the ``plot`` extra): the reports' plots and
``vocalmix analyze --plot`` save them the same way."""

from __future__ import annotations

from typing import Any


def png_bytes(fig: Any, dpi: int) -> bytes:
    """The matplotlib figure ``fig`` as PNG bytes at ``dpi`` dots per inch; the figure is
    closed (pyplot keeps every open figure alive)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["png_bytes"]
