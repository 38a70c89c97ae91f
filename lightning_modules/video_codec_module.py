"""Training a learned video codec (ScaleSpaceFlow and successors) on clips: rate + λ·distortion summed
over the frames of a GOP, in the staged schedule learned video codecs use."""

from __future__ import annotations

from typing import Literal

import torch

from codec_networks.padding import crop_to, pad_to_multiple
from codec_networks.video_codec import LearnedVideoCodec
from lightning_modules.codec_module import CodecModule, distortion_loss
from vcm_metrics import bits_from_likelihoods, psnr
from vcmlab.checkpoints import load_codec_weights
from vcmlab.errors import ConfigError

Stage = Literal["intra", "inter", "gop"]
STAGES = ("intra", "inter", "gop")


class VideoCodecModule(CodecModule):
    """Stages (`stages`: [{step, mode}], each mode from its step on):

    - intra: the intra (key) frame codec alone, on the first frame of each clip;
    - inter: one P-frame (the clip's second frame) predicted from the intra reconstruction of the
      first, detached, so motion and residual coding learn from a fixed reference;
    - gop: the whole clip as a GOP, each P-frame predicted from the previous reconstruction, the
      losses of all frames summed (as the codec will run at test time).

    `intra_checkpoint` (models with an `intra` image codec: video_e2e): a vcm-train image-codec
    checkpoint (experiment=lic_hyperprior, the same N and M) initialises the intra codec; with
    `freeze_intra` it stays as trained (then drop the intra stage).

    Rate is bits per pixel over the coded frames; distortion and the weights are CodecModule's (the
    loss-weight schedule applies as for images). Validation codes each clip into one real GOP file
    (LearnedVideoCodec) and logs its bpp, PSNR and per-frame PSNR (`val/psnr_frame<t>`).
    """

    codes_video = True

    def __init__(
        self,
        codec,
        task=None,
        *,
        stages: list[dict] | None = None,
        intra_checkpoint: str | None = None,
        freeze_intra: bool = False,
        **kwargs,
    ):
        if task is not None:
            raise ConfigError("video training has no machine task yet: set task=none")
        super().__init__(codec, None, **kwargs)
        if (intra_checkpoint or freeze_intra) and not hasattr(codec, "intra"):
            raise ConfigError(f"module.intra_checkpoint/freeze_intra: {type(codec).__name__} has no intra codec")
        if intra_checkpoint:
            load_codec_weights(codec.intra, intra_checkpoint)
        if freeze_intra:
            codec.intra.requires_grad_(False)
        self.stages = sorted(
            ({"step": int(s["step"]), "mode": str(s["mode"])} for s in (stages or [{"step": 0, "mode": "gop"}])),
            key=lambda s: s["step"],
        )
        if not self.stages or self.stages[0]["step"] != 0 or any(s["mode"] not in STAGES for s in self.stages):
            raise ConfigError(f"module.stages: a list of {{step, mode}} from step 0, mode one of {STAGES}")

    def stage(self, step: int) -> Stage:
        return [s["mode"] for s in self.stages if s["step"] <= step][-1]

    def gop_losses(self, clip: torch.Tensor, mode: Stage, weights) -> dict[str, torch.Tensor]:
        """clip (B, T, 3, H, W)."""
        height, width = clip.shape[-2:]
        frames = [pad_to_multiple(clip[:, t], self.pad_multiple) for t in range(clip.shape[1])]
        if mode == "intra":
            x_hat, likelihoods = self.codec.forward_keyframe(frames[0])
            reconstructions, all_likelihoods, targets = [x_hat], [likelihoods], [clip[:, 0]]
        elif mode == "inter":
            with torch.no_grad():
                reference, _ = self.codec.forward_keyframe(frames[0])
            x_hat, likelihoods = self.codec.forward_inter(frames[1], reference)
            reconstructions, all_likelihoods, targets = [x_hat], [likelihoods], [clip[:, 1]]
        else:
            out = self.codec(frames)
            reconstructions, all_likelihoods = out["x_hat"], out["likelihoods"]
            targets = [clip[:, t] for t in range(clip.shape[1])]
        decoded = [crop_to(x, height, width) for x in reconstructions]
        pixels = clip.shape[0] * height * width * len(targets)
        bits = sum(bits_from_likelihoods(lk) for frame in all_likelihoods for lk in frame.values())
        bpp = bits / pixels
        dist = torch.stack([distortion_loss(x, t, self.distortion) for x, t in zip(decoded, targets)]).mean()
        return {"loss": weights.combine(bpp, dist, 0.0), "bpp": bpp, "distortion": dist, "x_hat": decoded}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        clip = batch["frames"]
        mode = self.stage(self.global_step)
        if mode != "intra" and clip.shape[1] < 2:
            raise ConfigError(f"stage {mode} needs clips of at least 2 frames: raise data.clip_length")
        w = self.loss_weights(self.global_step)
        terms = self.gop_losses(clip, mode, w)
        aux_loss = self.optimisation_step(terms["loss"])
        n = clip.shape[0]
        self.log_dict(
            {f"train/{k}": terms[k].detach() for k in ("loss", "bpp", "distortion")}
            | {"train/aux_loss": aux_loss.detach()},
            batch_size=n,
            sync_dist=True,
        )
        self.log("train/stage", float(STAGES.index(mode)), batch_size=n)
        return terms["loss"].detach()

    def _start_bitstream_codec(self) -> None:
        self._bitstream_codec = LearnedVideoCodec(self.codec, self.device) if self.real_bitstreams else None

    def _evaluate(self, batch: dict, stage: str) -> dict:
        clip, n = batch["frames"], batch["frames"].shape[0]
        final = self.loss_weights.final
        forward = self.gop_losses(clip, "gop", final)
        if self._bitstream_codec is not None:
            decoded, bits = [], 0
            for sequence in clip:
                data = self._bitstream_codec.encode(sequence)
                decoded.append(self._bitstream_codec.decode(data).to(clip.device))
                bits += 8 * len(data)
            decoded = torch.stack(decoded)
            bpp = torch.tensor(
                bits / (clip.shape[0] * clip.shape[1] * clip.shape[-1] * clip.shape[-2]), device=clip.device
            )
        else:
            decoded, bpp = torch.stack(forward["x_hat"], dim=1).clamp(0, 1), forward["bpp"]
        per_frame = [psnr(decoded[:, t], clip[:, t]).mean() for t in range(clip.shape[1])]
        dist = torch.stack([distortion_loss(decoded[:, t], clip[:, t], self.distortion) for t in range(clip.shape[1])])
        metrics = {
            "bpp_est": forward["bpp"],
            "bpp": bpp,
            "psnr": torch.stack(per_frame).mean(),
            "distortion": dist.mean(),
            "rd_loss": final.combine(bpp, dist.mean(), 0.0),
        } | {f"psnr_frame{t}": v for t, v in enumerate(per_frame)}
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, batch_size=n, sync_dist=True)
        return {"x": clip[:, 0], "x_hat": decoded[:, 0], "bpp": bpp}
