"""Distribution probes: histograms, quantiles and drift of layer outputs, computed on the device.

A capture never synchronises with the host: it returns a device tensor of rows that the caller
moves to the host together with everything else at flush time (one transfer).

Quantiles come from a fine histogram (FINE_BINS bins between min and max), not from a sort: a
sort of every layer output cost 40% of training time on a CPU, the histogram a few percent. A
quantile is then within (max - min) / FINE_BINS of the exact one; min and max are exact, and a
quantile that falls among exact zeros (ReLU, dropout) is exactly zero.
"""

from __future__ import annotations

import math
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
FINE_BINS = 4096
# Row layout: min, max, mean, std, zero count, quantiles, drift, then edges and counts.
HEAD = 5 + len(QUANTILES) + 1


@dataclass(frozen=True)
class RowMeta:
    """What one row of a capture describes."""

    variant: str
    layer: str
    kind: str
    count: int
    has_previous: bool


@dataclass(frozen=True)
class PendingCaptures:
    """Captures still on the device: one row per tensor, decoded after the flush's transfer."""

    seed: int
    step: int
    bins: int
    meta: list[RowMeta]
    values: torch.Tensor

    def decode(self, rows: np.ndarray) -> list[HistogramCapture]:
        """Histogram captures from the host copy of `values`; rows with NaN or inf are dropped."""
        bins, out = self.bins, []
        rows = rows.reshape(len(self.meta), HEAD + 2 * bins + 1)
        for meta, row in zip(self.meta, rows, strict=True):
            head = row[:HEAD] if meta.has_previous else row[: HEAD - 1]
            if not (np.isfinite(head).all() and np.isfinite(row[HEAD:]).all()):
                continue
            lo, hi, mean, std, zeros = (float(v) for v in row[:5])
            quantiles = dict(
                zip(QUANTILE_KEYS, map(float, row[5 : 5 + len(QUANTILES)]), strict=True)
            )
            stats = {
                "count": meta.count,
                "mean": mean,
                "std": std,
                "min": lo,
                "max": hi,
                "quantiles": quantiles,
                "zero_fraction": zeros / meta.count,
                "drift": float(row[HEAD - 1]) if meta.has_previous else None,
            }
            edges = row[HEAD : HEAD + bins + 1].tolist()
            counts = [int(c) for c in row[HEAD + bins + 1 :]]
            out.append(
                HistogramCapture(
                    meta.variant, self.seed, meta.layer, meta.kind, self.step, edges, counts, stats
                )
            )
        return out


class Prober:
    """Computes captures and keeps each layer's previous quantile grid (on the device) for drift."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self.previous: dict[tuple[str, str, str], torch.Tensor] = {}
        levels = torch.tensor(QUANTILES, dtype=torch.float64)
        self._levels = torch.cat([levels, torch.linspace(0, 1, DRIFT_LEVELS, dtype=torch.float64)])
        weights = torch.full((DRIFT_LEVELS,), 1.0 / (DRIFT_LEVELS - 1), dtype=torch.float64)
        weights[[0, -1]] /= 2  # trapezoid rule over u in [0, 1]
        self._trapezoid = weights
        self._per_bin = math.ceil(FINE_BINS / spec.bins)

    def due(self, step: int) -> bool:
        """Whether a capture is taken after update `step`."""
        return self.spec.enabled and step % self.spec.every == 0

    @torch.no_grad()
    def layer_outputs(self, net: Net, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Every probed layer's output on x, in the spec's mode, leaving training unperturbed."""
        was_training = net.training
        if self.spec.mode == "eval":
            net.eval()
            _, outputs = net.forward_with_outputs(x)
        else:
            # Train mode would advance BN running stats and the dropout RNG: undo both.
            saved = [b.clone() for b in net.buffers()]
            devices = [x.device] if x.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices, device_type=x.device.type):
                net.train()
                _, outputs = net.forward_with_outputs(x)
            for buffer, value in zip(net.buffers(), saved, strict=True):
                buffer.copy_(value)
        net.train(was_training)
        return outputs

    @torch.no_grad()
    def capture(
        self, seed: int, step: int, variants: list[tuple[str, Net, torch.Tensor]]
    ) -> PendingCaptures:
        """Statistics of every probed tensor of every (name, net, input batch) given."""
        tensors: list[tuple[str, str, str, torch.Tensor]] = []
        for variant, net, x in variants:
            tensors += [
                (variant, layer, "activation", t) for layer, t in self.layer_outputs(net, x)
            ]
            if self.spec.weights:
                tensors += [(variant, name, "weight", p) for name, p in net.named_weights()]
            if self.spec.gradients:
                tensors += [
                    (variant, name, "grad", p.grad)
                    for name, p in net.named_weights()
                    if p.grad is not None
                ]
        # Tensors of equal size are stacked so each statistic is one batched op per size.
        groups: dict[int, list[int]] = {}
        for index, (*_, t) in enumerate(tensors):
            groups.setdefault(t.numel(), []).append(index)
        meta: list[RowMeta] = []
        blocks = []
        for n, indices in groups.items():
            stacked = torch.stack([tensors[i][3].detach().reshape(-1).float() for i in indices])
            keys = [tensors[i][:3] for i in indices]
            meta += [RowMeta(*k, count=n, has_previous=k in self.previous) for k in keys]
            blocks.append(self._rows(stacked, keys))
        return PendingCaptures(seed, step, self.spec.bins, meta, torch.cat(blocks).reshape(-1))

    def _rows(self, x: torch.Tensor, keys: list[tuple[str, str, str]]) -> torch.Tensor:
        """One stats row per row of x (k, n), in float64; a handful of passes over x."""
        k, n = x.shape
        bins, fine = self.spec.bins, self.spec.bins * self._per_bin
        levels, trapezoid = self._levels.to(x.device), self._trapezoid.to(x.device)
        lo, hi = x.amin(dim=1), x.amax(dim=1)
        # histc's rule for a constant tensor: widen the range by one on each side.
        same = lo == hi
        left, right = torch.where(same, lo - 1, lo), torch.where(same, hi + 1, hi)
        # Moments of x - min: the shift keeps E[d^2] - E[d]^2 from cancelling when |mean| >> std.
        d = x - left[:, None]
        mean_d = d.sum(dim=1).double() / n
        var = ((d * d).sum(dim=1).double() / n - mean_d**2).clamp_(min=0)
        signs = x.sign()
        balance = signs.sum(dim=1).double()
        nonzero = signs.abs_().sum(dim=1).double()
        zeros, negative = n - nonzero, (nonzero - balance) / 2
        # Bin index computed elementwise and scattered: unlike histc's automatic range, nothing
        # here reads min/max back to the host, and NaN (a diverging run) cannot index out of range.
        d.mul_((fine / (right - left))[:, None]).floor_()
        torch.nan_to_num_(d, nan=0.0, posinf=fine - 1, neginf=0.0).clamp_(0, fine - 1)
        d.add_(torch.arange(0, k * fine, fine, device=x.device, dtype=d.dtype)[:, None])
        ones = torch.ones((), dtype=torch.float32, device=x.device).expand(k * n)
        counts = torch.zeros(k * fine, dtype=torch.float32, device=x.device)
        counts = counts.index_add_(0, d.view(-1).int(), ones).view(k, fine).double()
        lo, hi, left, right = lo.double(), hi.double(), left.double(), right.double()
        grid = self._quantiles(counts, left, right, n, levels)
        # Exact where the histogram blurs: the ends, constant tensors, and runs of exact zeros.
        rank = levels * n
        in_zeros = (rank >= negative[:, None]) & (rank <= (negative + zeros)[:, None])
        grid = torch.where(in_zeros & (zeros > 0)[:, None], 0.0, grid)
        grid = torch.where(same[:, None], lo[:, None], grid)
        ends = [0, len(QUANTILES) - 1, len(QUANTILES), grid.shape[1] - 1]
        grid[:, ends] = torch.stack([lo, hi, lo, hi], dim=1)
        quantiles, current = grid[:, : len(QUANTILES)], grid[:, len(QUANTILES) :]
        nan_row = torch.full((DRIFT_LEVELS,), math.nan, dtype=torch.float64, device=x.device)
        previous = torch.stack([self.previous.get(key, nan_row) for key in keys])
        drift = ((current - previous).abs() * trapezoid).sum(dim=1)
        for key, row in zip(keys, current, strict=True):
            self.previous[key] = row
        steps = torch.arange(bins + 1, device=x.device, dtype=torch.float64) / bins
        edges = left[:, None] + (right - left)[:, None] * steps
        coarse = counts.view(k, bins, self._per_bin).sum(dim=2)
        head = torch.stack([lo, hi, left + mean_d, var.sqrt(), zeros], dim=1)
        return torch.cat([head, quantiles, drift[:, None], edges, coarse], dim=1)

    @staticmethod
    def _quantiles(
        counts: torch.Tensor, left: torch.Tensor, right: torch.Tensor, n: int, levels: torch.Tensor
    ) -> torch.Tensor:
        """Quantiles at `levels` read off a histogram, interpolating linearly inside a bin."""
        fine = counts.shape[1]
        cumulative = counts.cumsum(dim=1)
        target = (levels * n).expand(len(counts), -1).contiguous()
        index = torch.searchsorted(cumulative, target).clamp_(max=fine - 1)
        before = cumulative.gather(1, index) - counts.gather(1, index)
        inside = ((target - before) / counts.gather(1, index).clamp(min=1)).clamp_(0, 1)
        width = (right - left)[:, None] / fine
        return left[:, None] + (index + inside) * width

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Previous quantile grids on the CPU, keyed "variant|layer|kind"."""
        return {"|".join(key): grid.detach().cpu().clone() for key, grid in self.previous.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        """Restore previous grids (drift continues exactly across a resume)."""
        self.previous = {tuple(k.split("|")): v.to(device) for k, v in state.items()}  # type: ignore[misc]
