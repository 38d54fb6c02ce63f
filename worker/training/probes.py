"""Distribution probes: histograms, quantiles and drift of layer outputs, computed on the device.

A capture makes a few passes over each layer's output and keeps, on the device, its min, max,
moments and a fine histogram. Nothing is read back: at flush time `finish` turns every pending
capture into report rows in one batch (quantiles, drift, coarse histogram), and the caller
moves those to the host with everything else in one transfer.

Quantiles are read off the fine histogram (FINE_BINS bins between min and max), not a sort:
sorting every layer output cost about 40% of a CPU training step. A quantile is within
(max - min) / FINE_BINS of torch.quantile's; min and max are exact, and a quantile that falls
among exact zeros (ReLU, dropout) is exactly zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from shared.spec import ProbeSpec
from worker.training.models import Net
from worker.training.sink import QUANTILE_KEYS, HistogramCapture
from worker.training.summaries import Layout, groups, value_range

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
# Quantile levels of the Wasserstein-1 estimate: W1 = integral over u of |F^-1(u) - G^-1(u)|.
DRIFT_LEVELS = 65
# Resolution of the histogram that quantiles are read from (rounded up to a multiple of bins).
FINE_BINS = 2048
# Layouts kept at most (one per shape of capture seen).
MAX_LAYOUTS = 8
# Report row: min, max, mean, std, zero count, quantiles, drift, then edges and counts.
HEAD = 5 + len(QUANTILES) + 1

Key = tuple[str, str, str]  # variant, layer, kind
Outputs = list[tuple[str, torch.Tensor]]  # probed layer outputs by canonical name


@dataclass(frozen=True)
class PendingCapture:
    """One capture's raw summaries, still on the device."""

    seed: int
    step: int
    keys: list[Key]
    counts: list[int]  # elements per tensor
    moments: torch.Tensor  # (k, 6): min, max, sum of d, of d^2, of sign(x), of |sign(x)|
    histogram: torch.Tensor  # (k, fine)


def _order_statistics(
    histogram: torch.Tensor, left: torch.Tensor, width: torch.Tensor, rank: torch.Tensor
) -> torch.Tensor:
    """Values of the given ranks (n, m): a bin's values are taken as evenly spread across it."""
    cumulative = histogram.cumsum(dim=1)
    index = torch.searchsorted(cumulative, rank + 1).clamp_(max=histogram.shape[1] - 1)
    in_bin = histogram.gather(1, index)
    before = cumulative.gather(1, index) - in_bin
    return left[:, None] + (index + (rank - before + 0.5) / in_bin.clamp(min=1)) * width[:, None]


class Prober:
    """Takes captures and keeps each layer's previous quantile grid (on the device) for drift."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self.previous: dict[Key, torch.Tensor] = {}
        self._per_bin = math.ceil(FINE_BINS / spec.bins)
        self._fine = spec.bins * self._per_bin
        levels = torch.tensor(QUANTILES, dtype=torch.float64)
        self._levels = torch.cat([levels, torch.linspace(0, 1, DRIFT_LEVELS, dtype=torch.float64)])
        trapezoid = torch.full((DRIFT_LEVELS,), 1.0 / (DRIFT_LEVELS - 1), dtype=torch.float64)
        trapezoid[[0, -1]] /= 2  # trapezoid rule over u in [0, 1]
        self._trapezoid = trapezoid
        self._layouts: dict[tuple[tuple[int, ...], str], Layout] = {}

    def due(self, step: int) -> bool:
        """Whether a capture is taken after update `step`."""
        return self.spec.enabled and step % self.spec.every == 0

    @torch.no_grad()
    def layer_outputs(self, net: Net, x: torch.Tensor) -> Outputs:
        """Every probed layer's output on x in eval mode (train mode takes the step's own)."""
        was_training = net.training
        net.eval()
        _, outputs = net.forward_with_outputs(x)
        net.train(was_training)
        return outputs

    @torch.no_grad()
    def capture(
        self, seed: int, step: int, variants: list[tuple[str, Net, Outputs]]
    ) -> PendingCapture:
        """Summaries of every probed tensor of every (name, net, its probed layer outputs) given."""
        tensors: list[tuple[Key, torch.Tensor]] = []
        for variant, net, outputs in variants:
            tensors += [((variant, name, "activation"), t) for name, t in outputs]
            if self.spec.weights:
                tensors += [((variant, name, "weight"), p) for name, p in net.named_weights()]
            if self.spec.gradients:
                tensors += [
                    ((variant, name, "grad"), p.grad)
                    for name, p in net.named_weights()
                    if p.grad is not None
                ]
        keys, counts, moments, histograms = [], [], [], []
        for group in groups([t.numel() for _, t in tensors]):
            keys += [tensors[i][0] for i in group]
            lengths = [tensors[i][1].numel() for i in group]
            counts += lengths
            layout = self._layout(lengths, tensors[group[0]][1].device)
            summary = layout.summarize([tensors[i][1] for i in group])
            moments.append(summary[0])
            histograms.append(summary[1])
        return PendingCapture(seed, step, keys, counts, torch.cat(moments), torch.cat(histograms))

    def _layout(self, lengths: list[int], device: torch.device) -> Layout:
        key = (tuple(lengths), str(device))
        if key not in self._layouts:
            if len(self._layouts) >= MAX_LAYOUTS:  # shapes seen once (a partial batch) go too
                self._layouts.clear()
            self._layouts[key] = Layout(lengths, self._fine, device)
        return self._layouts[key]

    @torch.no_grad()
    def finish(
        self, pending: list[PendingCapture]
    ) -> tuple[torch.Tensor, Callable[[np.ndarray], list[HistogramCapture]]]:
        """Report rows of all pending captures in one batch, and how to decode them on the host."""
        keys = [key for p in pending for key in p.keys]
        device = pending[0].histogram.device
        n = torch.tensor([c for p in pending for c in p.counts], dtype=torch.float64).to(device)
        moments = torch.cat([p.moments for p in pending])
        histogram = torch.cat([p.histogram for p in pending])
        lo, hi, sum_d, sum_d2, balance, nonzero = moments.unbind(dim=1)
        zeros, negative = n - nonzero, (nonzero - balance) / 2
        mean_d = sum_d / n
        std = (sum_d2 / n - mean_d**2).clamp_(min=0).sqrt()
        left, right = value_range(lo, hi)
        # torch.quantile's linear interpolation between the order statistics around q (n - 1).
        position = self._levels.to(device) * (n[:, None] - 1)
        low, high = position.floor(), position.ceil()
        width = (right - left) / self._fine
        # Both neighbours in one call: the cumulative histogram is the largest thing made here.
        ranks = torch.cat([low, high], dim=1)
        below, above = _order_statistics(histogram, left, width, ranks).chunk(2, dim=1)
        grid = below + (above - below) * (position - low)
        in_zeros = (low >= negative[:, None]) & (high < (negative + zeros)[:, None])
        grid = torch.where(in_zeros, 0.0, grid)
        grid = torch.where((lo == hi)[:, None], lo[:, None], grid)
        ends = [0, len(QUANTILES) - 1, len(QUANTILES), grid.shape[1] - 1]
        grid[:, ends] = torch.stack([lo, hi, lo, hi], dim=1)
        quantiles, current = grid[:, : len(QUANTILES)], grid[:, len(QUANTILES) :]
        drift, has_previous = self._drift(keys, current)
        steps = torch.arange(self.spec.bins + 1, device=device, dtype=torch.float64)
        edges = left[:, None] + (right - left)[:, None] * (steps / self.spec.bins)
        coarse = histogram.view(len(keys), self.spec.bins, self._per_bin).sum(dim=2)
        head = torch.stack([lo, hi, left + mean_d, std, zeros], dim=1)
        rows = torch.cat([head, quantiles, drift[:, None], edges, coarse], dim=1)
        return rows.reshape(-1), lambda host: self._decode(pending, has_previous, host)

    def _drift(self, keys: list[Key], current: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
        """W1 distance of each row's quantile grid to its layer's previous one (NaN if none)."""
        table = [current, torch.full_like(current[:1], math.nan)]
        nan_index, index, has_previous = len(keys), [], []
        last: dict[Key, int] = {}
        for row, key in enumerate(keys):
            if key in last:
                index.append(last[key])
            elif key in self.previous:
                index.append(len(keys) + len(table) - 1)
                table.append(self.previous[key][None])
            else:
                index.append(nan_index)
            has_previous.append(index[-1] != nan_index)
            last[key] = row
        previous = torch.cat(table)[torch.tensor(index, device=current.device)]
        drift = ((current - previous).abs() * self._trapezoid.to(current.device)).sum(dim=1)
        self.previous.update({key: current[row] for key, row in last.items()})
        return drift, has_previous

    def _decode(
        self, pending: list[PendingCapture], has_previous: list[bool], host: np.ndarray
    ) -> list[HistogramCapture]:
        """Histogram captures from the host copy of finish's rows; NaN or inf rows are dropped."""
        bins, out = self.spec.bins, []
        table = host.reshape(len(has_previous), -1)
        # Drift is NaN by design where there is no previous grid; anything else non-finite is not.
        drift_ok = ~np.array(has_previous, dtype=bool) | np.isfinite(table[:, HEAD - 1])
        finite = np.isfinite(np.delete(table, HEAD - 1, axis=1)).all(axis=1) & drift_ok
        # Whole blocks to Python values at once: per-row conversions dominated decoding.
        heads, edges = table[:, :HEAD].tolist(), table[:, HEAD : HEAD + bins + 1].tolist()
        counts = np.rint(table[:, HEAD + bins + 1 :]).astype(np.int64).tolist()
        row = -1
        for capture in pending:
            for (variant, layer, kind), count in zip(capture.keys, capture.counts, strict=True):
                row += 1
                if not finite[row]:
                    continue
                lo, hi, mean, std, zeros, *quantiles, drift = heads[row]
                stats = {
                    "count": count, "mean": mean, "std": std, "min": lo, "max": hi,
                    "quantiles": dict(zip(QUANTILE_KEYS, quantiles, strict=True)),
                    "zero_fraction": zeros / count,
                    "drift": drift if has_previous[row] else None,
                }  # fmt: skip
                out.append(HistogramCapture(variant, capture.seed, layer, kind, capture.step,
                                            edges[row], counts[row], stats))  # fmt: skip
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Previous quantile grids on the CPU, keyed "variant|layer|kind"."""
        return {"|".join(key): grid.detach().cpu().clone() for key, grid in self.previous.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        """Restore previous grids (drift continues exactly across a resume)."""
        self.previous = {}
        for name, grid in state.items():
            variant, layer, kind = name.split("|")
            self.previous[(variant, layer, kind)] = grid.to(device)
