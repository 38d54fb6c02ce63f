"""Moments and fine histograms of many tensors at once, on their device, with nothing read back.

Tensors are packed as the rows of one matrix, each padded to the longest with its first value,
so a group of them costs the same few dozen ops however many it holds. A group's matrix and
work buffer are kept for the next capture of the same shapes, so that a capture makes no large
allocation (on a CPU, each can mean fresh pages to fault in).
"""

from __future__ import annotations

import torch

# A group of tensors costs a fixed few dozen small ops, about as much as this many padding
# values (each pass over the group reads them too); tensors of one size join a group of longer
# ones when the padding they add up to stays under it.
PAD_LIMIT = 1 << 15
# Largest group (in values) whose buffers are kept between captures; larger ones are made anew
# each time rather than held (two float32 buffers of this size: 32 MiB).
KEEP_LIMIT = 1 << 22


def groups(sizes: list[int]) -> list[list[int]]:
    """Indices grouped largest first, a group padded to its first (longest) tensor's size."""
    found: list[list[int]] = []
    for size in sorted(set(sizes), reverse=True):
        same = [i for i, s in enumerate(sizes) if s == size]
        if found and len(same) * (sizes[found[-1][0]] - size) <= PAD_LIMIT:
            found[-1] += same
        else:
            found.append(same)
    return found


def value_range(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram range; histc's rule for a constant tensor: widen by one on each side."""
    same = (lo == hi).to(lo.dtype)
    return lo - same, hi + same


def bincount(index: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of 0..size-1 occurs in index (which lies in that range), as float64."""
    if index.device.type == "cpu":
        return torch.bincount(index, minlength=size).double()  # faster than index_add_ on a CPU
    # bincount on CUDA reads the maximum back to the host; index_add_ stays on the device.
    ones = torch.ones((), dtype=torch.float64, device=index.device).expand(len(index))
    return torch.zeros(size, dtype=torch.float64, device=index.device).index_add_(0, index, ones)


class Layout:
    """One group's shape (elements per tensor) on one device: its constants and work buffers."""

    def __init__(self, lengths: list[int], fine: int, device: torch.device):
        k, width = len(lengths), max(lengths)
        n = torch.tensor(lengths)
        self.shape, self.fine, self.device = (k, width), fine, device
        self.pad = (width - n).float().to(device)
        self.unpad = -self.pad.double()
        # A float mask: masked_fill_ is 10x slower. None when no row is padded.
        keep = torch.arange(width)[None, :] < n[:, None]
        self.keep = keep.float().to(device) if bool((n < width).any()) else None
        self.starts = (torch.arange(k) * fine).to(device)
        self.offsets = self.starts[:, None].int()
        self._kept: tuple[torch.Tensor, torch.Tensor] | None = None

    def _buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The packed matrix and one work matrix (the fewer buffers, the more stay in cache)."""
        if self._kept is not None:
            return self._kept
        made = (
            torch.empty(self.shape, device=self.device),
            torch.empty(self.shape, device=self.device),
        )
        if self.shape[0] * self.shape[1] <= KEEP_LIMIT:
            self._kept = made
        return made

    def _pack(self, x: torch.Tensor, tensors: list[torch.Tensor]) -> None:
        """Each tensor flattened into its row of x, padded with its first value."""
        width = self.shape[1]
        if self.keep is None:  # no padding: one op
            torch.cat([t.reshape(1, width) for t in tensors], out=x)  # no graph: under no_grad
            return
        for row, tensor in enumerate(tensors):
            n = tensor.numel()
            x[row, :n].view(tensor.shape).copy_(tensor)
            if n < width:
                x[row, n:].fill_(x[row, 0])

    def summarize(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per tensor: min, max, sum of d = x - left, of d^2, of sign(x), of |sign(x)| (k, 6),
        and its fine histogram (k, fine), float64.

        Padding repeats a row's first value, so min and max are right; its share of the sign
        sums and of bin 0 (it becomes d = 0 there) is taken back out.
        """
        x, work = self._buffers()
        k, fine = self.shape[0], self.fine
        self._pack(x, tensors)
        lo, hi = x.amin(dim=1), x.amax(dim=1)
        left, right = value_range(lo, hi)
        signs = torch.sign(x, out=work)
        if self.keep is None:  # (small ops cost as much as passes here: none that are not needed)
            balance, nonzero = signs.sum(dim=1), signs.abs_().sum(dim=1)
        else:
            padding = self.pad * signs[:, 0]  # what the padding adds to the sign sums
            balance = signs.sum(dim=1) - padding
            nonzero = signs.abs_().sum(dim=1) - padding.abs_()
        # Moments of x - left: the shift keeps E[d^2] - E[d]^2 from cancelling when |mean| >> std.
        d = torch.sub(x, left[:, None], out=work)
        if self.keep is not None:
            d.mul_(self.keep)
        sum_d, sum_d2 = d.sum(dim=1), torch.linalg.vector_norm(d, dim=1).square()
        # Bins are computed elementwise and counted on the device: histc's automatic range would
        # read min and max back to the host, and NaN (a diverging run) must not index anything.
        # Every d is >= 0 here, so the integer conversion's truncation is the floor.
        span = right - left
        d.mul_((fine / span)[:, None])
        # On a CPU, reading whether every range is finite costs nothing and spares a pass. A
        # range can also have no width: a constant row far from zero (1e8 - 1 == 1e8 in float32)
        # gives 0 * inf = NaN, put in bin 0 like any NaN.
        if d.device.type != "cpu" or not bool((torch.isfinite(span) & (span > 0)).all()):
            torch.nan_to_num_(d, nan=0.0, posinf=fine - 1, neginf=0.0)
        d.clamp_(0, fine - 1)
        index = x.view(torch.int32).copy_(d).add_(self.offsets)  # x is read for the last time
        histogram = bincount(index.view(-1), k * fine)
        if self.keep is not None:
            histogram.index_add_(0, self.starts, self.unpad)
        moments = torch.stack([lo, hi, sum_d, sum_d2, balance, nonzero], dim=1).double()
        return moments, histogram.view(k, fine)
