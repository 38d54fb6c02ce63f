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

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
# Quantile levels of the Wasserstein-1 estimate: W1 = integral over u of |F^-1(u) - G^-1(u)|.
DRIFT_LEVELS = 65
# Resolution of the histogram that quantiles are read from (rounded up to a multiple of bins).
FINE_BINS = 2048
# A group of tensors costs a fixed few dozen small ops; padding a tensor with up to this many
# values is cheaper than giving it a group of its own.
PAD_LIMIT = 1 << 17
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


def _groups(sizes: list[int]) -> list[list[int]]:
    """Indices grouped largest first; a tensor joins a group when padding it is cheap enough."""
    groups: list[list[int]] = []
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        if groups and sizes[groups[-1][0]] - sizes[index] <= PAD_LIMIT:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _pack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Flattened tensors as rows of one float32 matrix, each padded with its first value."""
    width = tensors[0].numel()
    packed = torch.empty(len(tensors), width, dtype=torch.float32, device=tensors[0].device)
    for row, tensor in enumerate(tensors):
        flat = tensor.detach().reshape(-1)
        packed[row, : flat.numel()] = flat
        if flat.numel() < width:
            packed[row, flat.numel() :] = flat[0]
    return packed


def _bincount(index: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of 0..size-1 occurs in index (which lies in that range), as float64."""
    if index.device.type == "cpu":
        return torch.bincount(index, minlength=size).double()  # faster than index_add_ on a CPU
    # bincount on CUDA reads the maximum back to the host; index_add_ stays on the device.
    ones = torch.ones((), dtype=torch.float64, device=index.device).expand(len(index))
    return torch.zeros(size, dtype=torch.float64, device=index.device).index_add_(0, index, ones)


def _range(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram range; histc's rule for a constant tensor: widen by one on each side."""
    same = lo == hi
    return torch.where(same, lo - 1, lo), torch.where(same, hi + 1, hi)


def _order_statistics(
    histogram: torch.Tensor, left: torch.Tensor, width: torch.Tensor, rank: torch.Tensor
) -> torch.Tensor:
    """Values of the given ranks: a bin's values are taken as evenly spread across it."""
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
        self._layouts: dict[tuple[tuple[int, ...], str], dict[str, torch.Tensor]] = {}

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
        for group in _groups([t.numel() for _, t in tensors]):
            keys += [tensors[i][0] for i in group]
            lengths = [tensors[i][1].numel() for i in group]
            counts += lengths
            summary = self._summarize(_pack([tensors[i][1] for i in group]), lengths)
            moments.append(summary[0])
            histograms.append(summary[1])
        return PendingCapture(seed, step, keys, counts, torch.cat(moments), torch.cat(histograms))

    def _layout(self, lengths: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        key = (tuple(lengths), str(device))
        if key not in self._layouts:
            n = torch.tensor(lengths)
            starts = torch.arange(len(lengths)) * self._fine
            self._layouts[key] = {
                name: t.to(device)
                for name, t in {
                    "pad": (max(lengths) - n).float(),
                    "keep": (torch.arange(max(lengths))[None, :] < n[:, None]).float(),
                    "starts": starts,
                    "offsets": starts[:, None].float(),
                }.items()
            }
        return self._layouts[key]

    def _summarize(self, x: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Moments and fine histogram of each row of x; row i holds lengths[i] values + padding.

        Padding repeats a row's first value, so min and max are right; its share of the sign
        sums and of bin 0 (it becomes d = 0 there) is taken back out.
        """
        k, fine = len(x), self._fine
        c = self._layout(lengths, x.device)
        lo, hi = x.amin(dim=1), x.amax(dim=1)
        left, right = _range(lo, hi)
        # Moments of x - left: the shift keeps E[d^2] - E[d]^2 from cancelling when |mean| >> std.
        d = (x - left[:, None]).mul_(c["keep"])  # a float mask: masked_fill_ is 10x slower
        signs = x.sign()
        pad, pad_sign = c["pad"], signs[:, 0]
        moments = [lo, hi, d.sum(dim=1), (d * d).sum(dim=1), signs.sum(dim=1) - pad * pad_sign]
        moments.append(signs.abs_().sum(dim=1) - pad * pad_sign.abs())
        # Bins are computed elementwise and counted on the device: histc's automatic range would
        # read min and max back to the host, and NaN (a diverging run) must not index anything.
        d.mul_((fine / (right - left))[:, None]).floor_()
        torch.nan_to_num_(d, nan=0.0, posinf=fine - 1, neginf=0.0).clamp_(0, fine - 1)
        histogram = _bincount(d.add_(c["offsets"]).int().view(-1), k * fine)
        histogram.index_add_(0, c["starts"], -pad.double())
        return torch.stack(moments, dim=1).double(), histogram.view(k, fine)

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
        left, right = _range(lo, hi)
        # torch.quantile's linear interpolation between the order statistics around q (n - 1).
        position = self._levels.to(device) * (n[:, None] - 1)
        low, high = position.floor(), position.ceil()
        width = (right - left) / self._fine
        below = _order_statistics(histogram, left, width, low)
        grid = below + (_order_statistics(histogram, left, width, high) - below) * (position - low)
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
        rows = iter(zip(host.reshape(len(has_previous), -1), has_previous, strict=True))
        for capture in pending:
            for (variant, layer, kind), count in zip(capture.keys, capture.counts, strict=True):
                row, previous = next(rows)
                head = row[:HEAD] if previous else row[: HEAD - 1]
                if not (np.isfinite(head).all() and np.isfinite(row[HEAD:]).all()):
                    continue
                lo, hi, mean, std, zeros = (float(v) for v in row[:5])
                stats = {
                    "count": count, "mean": mean, "std": std, "min": lo, "max": hi,
                    "quantiles": dict(zip(QUANTILE_KEYS, row[5 : HEAD - 1].tolist(), strict=True)),
                    "zero_fraction": zeros / count,
                    "drift": float(row[HEAD - 1]) if previous else None,
                }  # fmt: skip
                edges = row[HEAD : HEAD + bins + 1].tolist()
                counts = [round(c) for c in row[HEAD + bins + 1 :].tolist()]
                out.append(HistogramCapture(variant, capture.seed, layer, kind, capture.step,
                                            edges, counts, stats))  # fmt: skip
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
