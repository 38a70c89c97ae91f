"""A trained CompressAI model as an image codec: tensor -> bytes -> tensor, through real entropy-coded bitstreams."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from functools import cached_property

import torch
from compressai.models import CompressionModel
from compressai.models.google import get_scale_table

from codec_networks.bitstream import FINGERPRINT_BYTES, IDENTITY_BYTES, Payload, pack, unpack
from codec_networks.complexity import measure
from codec_networks.entropy_state import fingerprint
from codec_networks.one_stream import OneStream
from codec_networks.padding import crop_to, pad_multiple_for, pad_to_multiple
from vcm_metrics.rate import bits_from_likelihoods
from vcmlab.errors import BitstreamError, InputError

SCALE_TABLE = get_scale_table(levels=512)  # CompressAI's range (0.11..256), 8x finer

# The largest image a stream may announce before the decoder allocates anything (Pillow's limit is
# ~89 Mpx); a corrupt or hostile header cannot make the decoder allocate more than this implies.
MAX_PIXELS = 2**28


# An encoder-side latent optimisation (latent overfitting, latent finetuning for machines): given the
# model, the padded input x and y = g_a(x), return the latent to code instead. The decoder is unchanged.
LatentRefiner = Callable[[CompressionModel, torch.Tensor, torch.Tensor], torch.Tensor]


class LearnedCodec:
    """Encoder and decoder around one CompressionModel.

    All entropy models write into one range-coded stream (`one_stream.py`): one ~2-byte coder
    termination and no stream lengths per image, whatever the number of latents.

    The CDF tables are built once here, with update(force=True, update_quantiles=True): CompressAI's
    bisection first sets the entropy bottlenecks' quantiles to where the aux loss wants them (in place,
    deterministic, ~0.04 s; a training run's validation thus leaves them converged in its checkpoints),
    and the scale table has 512 levels instead of CompressAI's 64, each scale coded with the nearest
    entry (`gaussian.nearest_scales`, inside the shared stream) rather than the next larger. All matter
    for the real bits: unconverged quantiles (aux loss ~2250 after the default 300-step runs) give CDF
    ranges that send many symbols through the coder's costly bypass path, and the next larger entry of a
    64-level table codes every scale up to 13% too wide (measured on a 300-step lic_hyperprior: file
    bits / estimated bits 1.037 with 64 levels, 1.005 with 512; the nearest entry took a 0.057 bpp file
    from 1.009 to 1.003). The model fingerprint keys each bitstream's checksum, so the decoder refuses
    streams of another model. Decoding must run on the same device type (and ideally the same machine
    type) as encoding: the hyper-decoder's floating-point output selects the CDFs, and CPU/GPU rounding
    differences can corrupt the decode (CompressAI #279, #309).
    """

    n_streams = 1  # the container's view: one shared stream

    def __init__(
        self,
        model: CompressionModel,
        device: str | torch.device = "cpu",
        pad_multiple: int = 64,
        latent_refiner: LatentRefiner | None = None,
        max_pixels: int = MAX_PIXELS,
        converge: bool = True,
    ):
        factor = getattr(model, "downsampling_factor", None)
        if not isinstance(factor, int) or pad_multiple % factor:
            raise InputError(
                f"{type(model).__name__} must state its downsampling_factor (an int dividing "
                f"pad_multiple={pad_multiple}): "
                "the decoder derives the latent shape from it"
            )
        self.device = torch.device(device)
        self.latent_refiner = latent_refiner
        self.model = model.to(self.device).eval()
        with torch.no_grad():
            self.aux_loss_before = float(self.model.aux_loss())
            self.model.update(scale_table=SCALE_TABLE, force=True, update_quantiles=converge)
            self.aux_loss = float(self.model.aux_loss())
        self.pad_multiple = pad_multiple_for(model, pad_multiple)
        self.fingerprint = fingerprint(self.model, FINGERPRINT_BYTES)
        self.max_pixels = max_pixels
        self.symbols_per_pixel = self._measure_symbols()

    @torch.no_grad()
    def encode(self, image: torch.Tensor, side_info: bytes = b"") -> bytes:
        """Code one image (3, H, W) with values in [0, 1]; `side_info` bytes travel in the same stream."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise InputError(f"encode expects one RGB image of shape (3, H, W), got {tuple(image.shape)}")
        height, width = image.shape[-2:]
        if height * width > self.max_pixels:
            raise InputError(
                f"a {width}x{height} image is over this codec's limit of {self.max_pixels} pixels (max_pixels)"
            )
        x = pad_to_multiple(image.to(self.device, torch.float32).unsqueeze(0), self.pad_multiple)
        stream = OneStream()
        with self._refined_analysis(), stream.writing(self.model):
            out = self.model.compress(x)
        if tuple(out["shape"]) != self.latent_shape(height, width):
            raise RuntimeError(
                f"{type(self.model).__name__}.compress wrote a latent of shape {tuple(out['shape'])}, "
                f"the decoder will expect {self.latent_shape(height, width)}"
            )
        return pack(Payload(self.fingerprint, height, width, (stream.flush(),), bytes(side_info)))

    @contextmanager
    def _refined_analysis(self):
        """During compress(), g_a's output is replaced by the refiner's latent (a forward hook that
        returns a value replaces the output), so any CompressAI model codes the refined latent."""
        if self.latent_refiner is None:
            yield
            return

        def refine(_g_a, inputs, y):
            # clones: tensors made under inference_mode (as in vcm-eval) cannot enter autograd
            with torch.inference_mode(False):
                x, y = inputs[0].clone(), y.clone()
                with torch.enable_grad():
                    return self.latent_refiner(self.model, x, y).detach()

        handle = self.model.g_a.register_forward_hook(refine)
        try:
            yield
        finally:
            handle.remove()

    def round_trip(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode every image of a batch (N, 3, H, W) to bytes and decode it back: (decoded batch, bpp of
        the batch from the bytes written)."""
        streams = [self.encode(image) for image in x]
        decoded = torch.stack([self.decode(s) for s in streams]).to(x.device)
        bpp = torch.tensor(8 * sum(map(len, streams)) / (x.shape[0] * x.shape[-2] * x.shape[-1]), device=x.device)
        return decoded, bpp

    @torch.no_grad()
    def estimated_bits(self, image: torch.Tensor) -> float:
        """-log2 of the entropy model's likelihoods for this image: what training optimises, and the
        floor the real bitstream (coder + container) is compared against."""
        x = pad_to_multiple(image.to(self.device, torch.float32).unsqueeze(0), self.pad_multiple)
        return float(bits_from_likelihoods(self.model(x)["likelihoods"]))

    @torch.no_grad()
    def decode(self, data: bytes) -> torch.Tensor:
        """Reconstruct the image (3, H, W) in [0, 1] from a bitstream written by `encode`."""
        return self.decode_with_side_info(data)[0]

    @torch.no_grad()
    def decode_with_side_info(self, data: bytes) -> tuple[torch.Tensor, bytes]:
        payload = unpack(data, self.n_streams, self.fingerprint)
        if payload.height < 1 or payload.width < 1 or payload.height * payload.width > self.max_pixels:
            raise BitstreamError(
                f"the stream announces a {payload.width}x{payload.height} image (limit {self.max_pixels} "
                "pixels): its header is corrupt"
            )
        try:
            with OneStream().reading(self.model, payload.streams[0]):
                out = self.model.decompress(
                    self._no_strings(), torch.Size(self.latent_shape(payload.height, payload.width))
                )
        except (AssertionError, RuntimeError, ValueError, IndexError) as err:
            raise BitstreamError(
                f"the entropy decoder failed on this stream ({type(err).__name__}: {err}): it is corrupt"
            ) from None
        x_hat = out["x_hat"]
        if not torch.isfinite(x_hat).all():
            raise BitstreamError("the stream decodes to NaN or infinite values: its payload is corrupt")
        return crop_to(x_hat.clamp(0, 1), payload.height, payload.width)[0], payload.side_info

    @property
    def settings(self) -> dict:
        return {
            "model": type(self.model).__name__,
            "fingerprint": self.fingerprint.hex(),
            "pad_multiple": self.pad_multiple,
            "latent_refiner": getattr(self.latent_refiner, "settings", type(self.latent_refiner).__name__)
            if self.latent_refiner
            else None,
            "device": str(self.device),
        }

    @cached_property
    def complexity(self) -> dict:
        """kMAC per pixel of compress() and decompress() and the decoder's sequential network calls,
        on a blank image of about 256x256 (`complexity.py`). A latent refiner's passes are not in it."""
        side = self.pad_multiple * max(1, 256 // self.pad_multiple)
        return measure(self.model, side, side, self.device)

    @torch.no_grad()
    def _measure_symbols(self) -> float:
        """Symbols per padded pixel in the stream (every latent scales with the image area), seen once
        on a blank image; also checks that the model's decompress() calls its entropy models in the
        order compress() did, which one shared stream needs."""
        side = self.pad_multiple
        written = OneStream()
        with written.writing(self.model):
            out = self.model.compress(torch.zeros(1, 3, side, side, device=self.device))
        self.levels = len(out["strings"])
        if any(s for level in out["strings"] for s in level):
            raise InputError(
                f"{type(self.model).__name__}.compress writes strings of its own, outside its entropy models"
            )
        read = OneStream()
        with read.reading(self.model, written.flush()):
            self.model.decompress(self._no_strings(), out["shape"])
        if read.call_sizes != written.call_sizes:
            raise InputError(
                f"{type(self.model).__name__} decodes its entropy models in another order ({read.call_sizes} symbols) "
                f"than it encodes them ({written.call_sizes}): it cannot share one stream"
            )
        return sum(written.call_sizes) / side**2

    def _no_strings(self) -> list[list[bytes]]:
        """What decompress() gets for strings: its entropy models read the shared stream instead."""
        return [[b""] for _ in range(self.levels)]

    def latent_shape(self, height: int, width: int) -> tuple[int, int]:
        """The latent shape `compress` writes for an image of this size: the decoder derives it, the
        container does not carry it."""
        factor = self.model.downsampling_factor
        return tuple(-(-n // self.pad_multiple) * self.pad_multiple // factor for n in (height, width))

    def side_info(self, data: bytes) -> bytes:
        return unpack(data, self.n_streams, self.fingerprint).side_info

    def payload_bytes(self, data: bytes) -> int:
        """Everything but the identifying and protecting fields (tag, model id, CRC)."""
        unpack(data, self.n_streams, self.fingerprint)
        return len(data) - IDENTITY_BYTES
