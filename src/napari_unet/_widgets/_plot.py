"""A small live plot of the training loss and the validation score, drawn with QPainter inside the dock.

No plotting library: the curve is a few hundred line segments, so a plain ``QWidget.paintEvent`` is enough and keeps
napari-unet free of matplotlib. The loss uses the left axis (linear, from 0), the validation score (mean Dice,
0..1) the right axis; the best validation point is ringed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["CurvePlot"]

LOSS_COLOR = QColor(80, 170, 255)
SMOOTH_COLOR = QColor(150, 210, 255)
VAL_COLOR = QColor(255, 160, 40)
#: seconds between two repaints while points arrive (each repaint recomposes the window: costly without a GPU)
REPAINT_INTERVAL = 0.5


def _nice_max(value: float) -> float:
    """Round ``value`` up to 1, 2 or 5 times a power of ten (axis top)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        top = m * 10**exp
        if top >= value * 0.999:
            return top
    return 10 ** (exp + 1)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100 or abs(v) < 0.01:
        return f"{v:.1e}"
    return f"{v:.3g}"


@dataclass(frozen=True)
class _Axes:
    """Data → pixels inside ``plot``: iterations 0..x_max across, loss 0..y_max (left) and score 0..1 (right) up."""

    plot: QRectF
    x_max: float
    y_max: float

    def x(self, x: float) -> float:
        return self.plot.left() + x / self.x_max * self.plot.width()

    def loss(self, y: float) -> float:
        return self.plot.bottom() - min(max(y / self.y_max, 0.0), 1.0) * self.plot.height()

    def score(self, y: float) -> float:
        return self.plot.bottom() - min(max(y, 0.0), 1.0) * self.plot.height()

    def loss_path(self, points: list[tuple[float, float]]) -> QPainterPath:
        path = QPainterPath(QPointF(self.x(points[0][0]), self.loss(points[0][1])))
        for x, y in points[1:]:
            path.lineTo(self.x(x), self.loss(y))
        return path


def _draw_grid(p: QPainter, plot: QRectF, fg: QColor) -> None:
    """The plot's frame and three faint horizontal lines."""
    grid = QColor(fg)
    grid.setAlpha(50)
    p.setPen(QPen(grid, 1))
    p.drawRect(plot)
    for frac in (0.25, 0.5, 0.75):
        y = plot.bottom() - frac * plot.height()
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))


class CurvePlot(QWidget):
    """Loss (per iteration) and validation score (per validation step) against the iteration.

    Attributes
    ----------
    loss_points : list[tuple[int, float]]
        (iteration, loss) as received.
    val_points : list[tuple[int, float]]
        (iteration, validation score) as received.
    """

    def __init__(self, parent: QWidget | None = None, *, val_label: str = "val. Dice") -> None:
        super().__init__(parent)
        self.loss_points: list[tuple[int, float]] = []
        self.val_points: list[tuple[int, float]] = []
        self.val_label = val_label
        self.x_total: int | None = None
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Training loss (blue, left axis) and validation score (orange, right axis, 0–1).")
        # Points may arrive hundreds of times a second: repaint at most every REPAINT_INTERVAL, asked for in the
        # call that brought the point, so that Qt paints it with whatever else that event changed (the status
        # line) in one composition of the window; the timer paints the last points when no more arrive.
        self._painted_at = -math.inf
        self._trailing = QTimer(self)
        self._trailing.setSingleShot(True)
        self._trailing.setInterval(int(REPAINT_INTERVAL * 1000))
        self._trailing.timeout.connect(self._repaint_now)

    def _repaint_now(self) -> None:
        self._painted_at = time.monotonic()
        self._trailing.stop()
        self.update()

    def _schedule(self) -> None:
        if time.monotonic() - self._painted_at >= REPAINT_INTERVAL:
            self._repaint_now()
        elif not self._trailing.isActive():
            self._trailing.start()

    # -- data ----------------------------------------------------------------------------------------------------

    def clear(self) -> None:
        self.loss_points.clear()
        self.val_points.clear()
        self.x_total = None
        self.update()

    def add_loss(self, iteration: int, loss: float) -> None:
        if loss is None or not math.isfinite(float(loss)):
            return
        self.loss_points.append((int(iteration), float(loss)))
        self._schedule()

    def add_validation(self, iteration: int, score: float) -> None:
        if score is None or not math.isfinite(float(score)):
            return
        self.val_points.append((int(iteration), float(score)))
        self._schedule()

    def set_total(self, total: int | None) -> None:
        """Known number of iterations (fixes the x axis), or None to follow the data."""
        self.x_total = int(total) if total else None
        self.update()

    def best_validation(self) -> tuple[int, float] | None:
        return max(self.val_points, key=lambda p: p[1]) if self.val_points else None

    # -- drawing -------------------------------------------------------------------------------------------------

    def _smoothed(self, n_bins: int) -> list[tuple[float, float]]:
        """Loss averaged in at most ``n_bins`` bins of iterations, then an exponential moving average."""
        if not self.loss_points:
            return []
        binned = self._binned_raw(n_bins)
        alpha = 2.0 / (1 + min(20, max(2, len(binned) // 10)))
        out, ema = [], binned[0][1]
        for x, y in binned:
            ema = alpha * y + (1 - alpha) * ema
            out.append((x, ema))
        return out

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fg = pal.color(pal.ColorRole.WindowText)
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        p.setFont(font)
        fm = p.fontMetrics()

        left, right, top, bottom = fm.horizontalAdvance("0.000") + 8, fm.horizontalAdvance("1.0") + 10, 18, 18
        plot = QRectF(left, top, max(self.width() - left - right, 10), max(self.height() - top - bottom, 10))
        _draw_grid(p, plot, fg)
        if not self.loss_points and not self.val_points:
            p.setPen(fg)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "loss and validation curves appear here")
            p.end()
            return

        x_max = max([1] + [x for x, _ in self.loss_points] + [x for x, _ in self.val_points])
        if self.x_total:
            x_max = max(x_max, self.x_total)
        axes = _Axes(plot, x_max, _nice_max(max((y for _, y in self.loss_points), default=1.0)))
        self._draw_loss(p, axes)
        self._draw_validation(p, axes)
        self._draw_text(p, axes, fg, (left, right, top))
        p.end()

    def _draw_loss(self, p: QPainter, axes: _Axes) -> None:
        """The raw loss, faint, and its smoothed curve on top (left axis)."""
        n_bins = max(int(axes.plot.width()), 10)
        raw = self._binned_raw(n_bins)
        if len(raw) > 1:
            faint = QColor(LOSS_COLOR)
            faint.setAlpha(90)
            p.setPen(QPen(faint, 1))
            p.drawPath(axes.loss_path(raw))
        smooth = self._smoothed(n_bins)
        if len(smooth) > 1:
            p.setPen(QPen(LOSS_COLOR, 2))
            p.drawPath(axes.loss_path(smooth))
        elif smooth:
            p.setPen(QPen(LOSS_COLOR, 4))
            p.drawPoint(QPointF(axes.x(smooth[0][0]), axes.loss(smooth[0][1])))

    def _draw_validation(self, p: QPainter, axes: _Axes) -> None:
        """The validation scores, joined, with the best one ringed (right axis, 0..1)."""
        if not self.val_points:
            return
        p.setPen(QPen(VAL_COLOR, 2))
        pts = [QPointF(axes.x(x), axes.score(y)) for x, y in self.val_points]
        for a, b in zip(pts, pts[1:], strict=False):
            p.drawLine(a, b)
        p.setBrush(VAL_COLOR)
        for q in pts:
            p.drawEllipse(q, 2.5, 2.5)
        bx, by = self.best_validation()
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(QPointF(axes.x(bx), axes.score(by)), 5.5, 5.5)

    def _draw_text(self, p: QPainter, axes: _Axes, fg: QColor, margins: tuple[float, float, float]) -> None:
        """Axis ends, the iteration count and the two legends (latest loss; latest and best score)."""
        left, right, top = margins
        plot = axes.plot
        p.setPen(fg)
        h = p.fontMetrics().height()
        p.drawText(QRectF(0, plot.top() - h / 2, left - 4, h), Qt.AlignmentFlag.AlignRight, _fmt(axes.y_max))
        p.drawText(QRectF(0, plot.bottom() - h / 2, left - 4, h), Qt.AlignmentFlag.AlignRight, "0")
        p.drawText(QRectF(plot.right() + 4, plot.top() - h / 2, right, h), Qt.AlignmentFlag.AlignLeft, "1")
        p.drawText(QRectF(plot.right() + 4, plot.bottom() - h / 2, right, h), Qt.AlignmentFlag.AlignLeft, "0")
        p.drawText(
            QRectF(plot.left(), plot.bottom() + 2, plot.width(), h),
            Qt.AlignmentFlag.AlignRight,
            f"{axes.x_max} it.",
        )
        legend = f"loss {self.loss_points[-1][1]:.3f}" if self.loss_points else "loss"
        p.setPen(LOSS_COLOR)
        p.drawText(QRectF(plot.left(), 0, plot.width(), top), Qt.AlignmentFlag.AlignLeft, legend)
        if self.val_points:
            bx, by = self.best_validation()
            text = f"{self.val_label} {self.val_points[-1][1]:.3f} (best {by:.3f} @ {bx})"
        else:
            text = f"{self.val_label}: —"
        p.setPen(VAL_COLOR)
        p.drawText(QRectF(plot.left(), 0, plot.width(), top), Qt.AlignmentFlag.AlignRight, text)

    def _binned_raw(self, n_bins: int) -> list[tuple[float, float]]:
        """The loss points, averaged in at most ``n_bins`` consecutive bins."""
        pts = self.loss_points
        if len(pts) <= n_bins:
            return [(float(x), y) for x, y in pts]
        step = len(pts) / n_bins
        out = []
        for b in range(n_bins):
            chunk = pts[int(b * step) : max(int((b + 1) * step), int(b * step) + 1)]
            out.append((sum(c[0] for c in chunk) / len(chunk), sum(c[1] for c in chunk) / len(chunk)))
        return out
