"""A conventional codec followed by a learned post-filter, with the filter's side information in the stream.

- BlockFilterCodec (method 1): the encoder decodes its own stream, tries every filter of a bank and "no
  filter" on each block, keeps the best for the objective, and entropy-codes the per-block choices against
  the bank's usage prior. The decoder filters the whole image with each filter it needs (no block
  seams) and pastes the chosen outputs. Choice 0 is "no filter", so with objective=mse no block ever gets
  worse than the conventional decode.
- AdaptedFilterCodec (method 9): the encoder finetunes the filter's biases (or all its weights) on the
  image being coded, quantises the deltas and entropy-codes them; the decoder rebuilds the same filter.
  An update that does not lower the image's MSE after quantisation is not sent (empty side info).

Stream: varint(len(side info)) | side info | conventional stream; every byte counts in the rate. The QP
the filters are conditioned on is the conventional codec's (a real decoder reads it from its stream).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from codec_networks.parameter_vectors import flatten, unflatten
from codec_networks.postfilters import FilterBank, QPConditionedFilter
from codec_networks.side_info import decode_integers, decode_symbols, encode_integers, encode_symbols, frame, unframe
from conventional_codecs.base import ImageCodec, settings_of
from conventional_codecs.container import payload_bytes
from vcmlab.errors import BitstreamError


def block_grid(height: int, width: int, block: int) -> tuple[int, int]:
    return math.ceil(height / block), math.ceil(width / block)


def run_filter(net: torch.nn.Module, decoded: torch.Tensor, qp: float, device: str) -> torch.Tensor:
    """One decoded image (3, H, W) through a filter on `device`, clamped, back on the CPU."""
    with torch.no_grad():
        return net(decoded[None].to(device), qp)[0].clamp(0, 1).cpu()


def block_means(values: torch.Tensor, block: int) -> torch.Tensor:
    """(K, H, W) per-pixel values to (K, rows, cols) means over blocks (edge blocks may be smaller)."""
    return F.avg_pool2d(values[:, None], block, block, ceil_mode=True)[:, 0]


class _FilteredCodec:
    """What both post-filter codecs share: the stream layout and the settings they report."""

    inner: ImageCodec
    name: str

    @property
    def settings(self) -> dict:
        return settings_of(self.inner) | {"postfilter": self.postfilter_settings()}

    def payload_bytes(self, data: bytes) -> int:
        side, payload = unframe(data, self.name)
        return len(side) + payload_bytes(self.inner, payload)  # side information is payload: it is the method's


class BlockFilterCodec(_FilteredCodec):
    def __init__(
        self,
        inner: ImageCodec,
        bank: FilterBank,
        qp: float,
        block_size: int = 128,
        objective: str = "mse",
        task=None,
        device: str = "cpu",
    ):
        if objective not in ("mse", "task"):
            raise ValueError(f"objective must be mse or task, got {objective!r}")
        if objective == "task" and task is None:
            raise ValueError("objective=task needs a task network")
        self.inner, self.bank, self.qp, self.block_size = inner, bank.to(device).eval(), float(qp), block_size
        self.objective, self.task, self.device = objective, task, device
        self.name = f"{inner.name}_pf{len(bank)}"
        self.last_encode_info: dict = {}

    def postfilter_settings(self) -> dict:
        return {
            "method": "per-block choice (method 1)",
            "filters": len(self.bank),
            "block_size": self.block_size,
            "objective": self.objective,
            "qp": self.qp,
        }

    def _filtered(self, decoded: torch.Tensor, j: int) -> torch.Tensor:
        return run_filter(self.bank.filters[j], decoded, self.qp, self.device)

    def block_costs(self, candidates: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """(K, rows, cols) cost of each candidate image on each block."""
        if self.objective == "mse":
            return block_means((candidates - original).pow(2).mean(1), self.block_size)
        with torch.no_grad():
            reference = self.task.features(original[None].to(self.device))
            decoded = self.task.features(candidates.to(self.device))
        size = original.shape[-2:]
        maps = [
            F.interpolate((d - r).pow(2).mean(1, keepdim=True), size=size, mode="nearest")[:, 0]
            for d, r in zip(decoded, reference)
        ]
        return block_means(torch.stack(maps).mean(0).cpu(), self.block_size)

    def compose(self, decoded: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
        """The decoder's output for (rows, cols) choices: 0 keeps the decode, j applies filter j-1."""
        out, b = decoded.clone(), self.block_size
        for j in choices.unique().tolist():
            if j == 0:
                continue
            filtered = self._filtered(decoded, j - 1)
            mask = (
                (choices == j).repeat_interleave(b, 0).repeat_interleave(b, 1)[: decoded.shape[1], : decoded.shape[2]]
            )
            out[:, mask] = filtered[:, mask]
        return out

    def encode(self, image: torch.Tensor) -> bytes:
        payload = self.inner.encode(image)
        decoded = self.inner.decode(payload)
        candidates = torch.stack([decoded, *(self._filtered(decoded, j) for j in range(len(self.bank)))])
        choices = self.block_costs(candidates, image.cpu()).argmin(0)
        side = encode_symbols(choices.flatten().tolist(), self.bank.choice_pmf().tolist())
        counts = torch.bincount(choices.flatten(), minlength=len(self.bank) + 1)
        self.last_encode_info = {"side_info_bytes": len(side), **{f"choice_{j}": int(c) for j, c in enumerate(counts)}}
        return frame(side, payload)

    def decode(self, data: bytes) -> torch.Tensor:
        side, payload = unframe(data, self.name)
        decoded = self.inner.decode(payload)
        rows, cols = block_grid(*decoded.shape[-2:], self.block_size)
        choices = torch.tensor(decode_symbols(side, rows * cols, self.bank.choice_pmf().tolist())).view(rows, cols)
        if choices.min() < 0 or choices.max() > len(self.bank):
            raise BitstreamError(f"{self.name}: corrupt side information (filter index out of range)")
        return self.compose(decoded, choices)


def parameter_names(net: torch.nn.Module, params: str) -> list[str]:
    """The tensors method 9 adapts: every convolution bias ('bias') or every parameter ('all')."""
    if params not in ("bias", "all"):
        raise ValueError(f"params must be 'bias' or 'all', got {params!r}")
    return [n for n, _ in net.named_parameters() if params == "all" or n.endswith("bias")]


class AdaptedFilterCodec(_FilteredCodec):
    """params: 'bias' (method 9), 'all' (the full-finetuning comparison) or 'none' (the filter as trained).
    adam_steps: encoder-side Adam iterations on the image; quantisation_step: of the parameter deltas,
    whose integers are Laplace-coded."""

    def __init__(
        self,
        inner: ImageCodec,
        postfilter: QPConditionedFilter,
        qp: float,
        params: str = "bias",
        adam_steps: int = 50,
        lr: float = 1e-3,
        quantisation_step: float = 1 / 1024,
        device: str = "cpu",
    ):
        self.inner, self.filter, self.qp = inner, postfilter.to(device).eval(), float(qp)
        self.params = params
        self.names = [] if params == "none" else parameter_names(postfilter, params)
        self.adam_steps, self.lr, self.quantisation_step = adam_steps, lr, quantisation_step
        self.device = device
        self.name = f"{inner.name}_pf_{params}"
        self.last_encode_info: dict = {}
        self.last_filter: QPConditionedFilter | None = None

    def postfilter_settings(self) -> dict:
        return {
            "method": "encoder-side finetuning (method 9)",
            "params": self.params,
            "adam_steps": self.adam_steps,
            "lr": self.lr,
            "quantisation_step": self.quantisation_step,
            "qp": self.qp,
        }

    @torch.inference_mode(False)
    @torch.enable_grad()
    def finetune(self, decoded: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """Adam on the chosen tensors for `adam_steps` steps; returns their deltas from the trained filter, flat."""
        # inputs made under inference_mode (vcm-eval) cannot enter autograd
        decoded, original = decoded.clone(), original.clone()
        net = copy.deepcopy(self.filter)
        tuned = list(self._adapted(net).values())
        for p in net.parameters():
            p.requires_grad_(False)
        for p in tuned:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(tuned, lr=self.lr)
        x, target = decoded[None].to(self.device), original[None].to(self.device)
        for _ in range(self.adam_steps):
            loss = F.mse_loss(net(x, self.qp), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return (flatten(self._adapted(net)) - flatten(self._adapted(self.filter))).cpu()

    def _adapted(self, net: QPConditionedFilter) -> dict[str, torch.Tensor]:
        return {n: p for n, p in net.named_parameters() if n in self.names}

    def rebuild(self, integers: torch.Tensor) -> QPConditionedFilter:
        """The trained filter plus dequantised deltas: exactly what the decoder runs."""
        net = copy.deepcopy(self.filter)
        params = self._adapted(net)
        with torch.no_grad():
            for p, delta in zip(
                params.values(), unflatten(integers.to(torch.float32) * self.quantisation_step, params).values()
            ):
                p += delta.to(p)
        return net

    def encode(self, image: torch.Tensor) -> bytes:
        payload = self.inner.encode(image)
        decoded = self.inner.decode(payload)
        side, self.last_filter = b"", self.filter
        if self.names:
            integers = torch.round(self.finetune(decoded, image.cpu()) / self.quantisation_step).long()
            tuned = self.rebuild(integers)
            mse = {
                net: float((run_filter(net, decoded, self.qp, self.device) - image.cpu()).pow(2).mean())
                for net in (tuned, self.filter)
            }
            if mse[tuned] < mse[self.filter]:  # else send no update: the decoder keeps the trained filter
                side, self.last_filter = encode_integers(integers), tuned
        self.last_encode_info = {"side_info_bytes": len(side)}
        return frame(side, payload)

    def decode(self, data: bytes) -> torch.Tensor:
        side, payload = unframe(data, self.name)
        decoded = self.inner.decode(payload)
        if not side:  # no update (params=none, or the encoder found none that helps)
            return run_filter(self.filter, decoded, self.qp, self.device)
        count = sum(p.numel() for p in self._adapted(self.filter).values())
        return run_filter(self.rebuild(decode_integers(side, count)), decoded, self.qp, self.device)
