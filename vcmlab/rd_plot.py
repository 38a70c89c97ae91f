"""Rate–quality plots of evaluation summaries, anchors overlaid."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (
    ("psnr", "PSNR (dB)"),
    ("ms_ssim", "MS-SSIM"),
    ("map", "mAP@0.5 (OpenImages)"),
    ("top1_agreement", "top-1 agreement"),
)


def read_summaries(path: Path) -> list[dict]:
    """A summaries.json written by vcm-eval (or the folder holding one)."""
    path = path / "summaries.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"anchor summaries not found: {path}")
    return json.loads(path.read_text())


def complexity_table(curves: dict[str, list[dict]]) -> str:
    """One line per learned curve: encoder and decoder kMAC per pixel, sequential decoder calls."""
    lines = []
    for name, points in curves.items():
        measured = next((p for p in points if "decoder_kmac_per_pixel" in p), None)
        if measured:
            lines.append(
                f"{name}: encoder {measured['encoder_kmac_per_pixel']:.1f} kMAC/px, decoder "
                f"{measured['decoder_kmac_per_pixel']:.1f} kMAC/px, {measured['decoder_sequential_calls']} "
                "sequential decoder network calls"
            )
    return "\n".join(lines)


def plot_rd_curves(curves: dict[str, list[dict]], out: Path) -> Path:
    """One panel per quality metric present in any curve; bpp on the x axis, one line per curve (and per
    scale of a resize ladder, whose points do not form one curve)."""
    curves = {
        (name if len({p.get("scale", 1.0) for p in points}) == 1 else f"{name} ×{scale:g}"): [
            p for p in points if p.get("scale", 1.0) == scale
        ]
        for name, points in curves.items()
        for scale in sorted({p.get("scale", 1.0) for p in points}, reverse=True)
    }
    panels = [(key, label) for key, label in PANELS if any(key in p for points in curves.values() for p in points)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, points in curves.items():
            points = sorted((p for p in points if key in p), key=lambda p: p["bpp"])
            if points:
                ax.plot([p["bpp"] for p in points], [p[key] for p in points], marker="o", label=name)
        ax.set_xlabel("bpp")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    table = complexity_table(curves)
    if table:  # below the panels; bbox_inches="tight" grows the figure to hold it
        fig.text(0.01, 0, table, va="top", family="monospace", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
