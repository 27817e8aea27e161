"""The one way the project makes a matplotlib figure: no GUI backend, one style, reproducible bytes.

:func:`figure` returns a ``matplotlib.figure.Figure`` (not registered with pyplot, so nothing stays
open between figures) and its axes as a 2-D array. Importing this module selects the non-interactive
Agg backend. The style (:data:`STYLE`: matplotlib's own defaults, pinned, so that a user's
``matplotlibrc`` does not change the figures) is applied by every call. Save figures with
``common.io.save_figure``, which writes PNGs without time-dependent metadata: the same data give the
same bytes.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg", force=True)

from matplotlib.figure import Figure  # noqa: E402

#: default size of ONE panel [inches]; a figure of r x c panels is (c x width) x (r x height)
PANEL_WIDTH_IN = 6.4
PANEL_HEIGHT_IN = 4.0
#: rcParams every figure is drawn with (matplotlib's defaults, pinned against a user's matplotlibrc)
STYLE: dict[str, Any] = {
    "font.family": ["DejaVu Sans"],
    "font.size": 10.0,
    "axes.titlesize": "large",
    "axes.labelsize": "medium",
    "axes.grid": False,
    "axes.prop_cycle": matplotlib.cycler(color=["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]),
    "image.cmap": "viridis",
    "legend.fontsize": "medium",
    "xtick.labelsize": "medium",
    "ytick.labelsize": "medium",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 100.0,
    "path.simplify": True,
    "text.usetex": False,
}


def figure(nrows: int = 1, ncols: int = 1, *, width: float = PANEL_WIDTH_IN, height: float = PANEL_HEIGHT_IN,
           layout: str | None = "constrained", **subplot_kw: Any) -> tuple[Figure, Any]:
    """A Figure of ``nrows`` x ``ncols`` panels, each ``width`` x ``height`` inches, and its axes
    (always a 2-D numpy array: ``axes[0, 0]`` for a single panel).

    ``layout`` is matplotlib's layout engine ("constrained", "tight" or None for a caller that
    calls ``fig.tight_layout(...)`` itself); ``subplot_kw`` go to ``Figure.subplots`` (``sharex``,
    ``sharey``, ``gridspec_kw`` ...).
    """
    matplotlib.rcParams.update(STYLE)
    fig = Figure(figsize=(width * ncols, height * nrows), layout=layout)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes
