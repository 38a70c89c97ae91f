"""Method 4: decode time against image size for the MSP profiles and CompressAI's context models, in one
run on the same threads: the serial autoregressive model (mbt2018), the checkerboard model
(cheng2020-anchor-checkerboard) and the hyperprior without context (mbt2018-mean), all untrained at
N = M = 192 as in the issue's measurement (decode time does not depend on training, except through
the number of symbols the rANS coder handles; every model codes the same uniform-noise image).

    python -m benchmarks.msp_decode_speed --out bench-results/msp_decode_speed.json [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from compressai.models import Cheng2020AnchorCheckerboard, JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior

from benchmarks import report
from codec_networks.complexity import counting_calls, measure
from codec_networks.msp import MultiScaleProgressive
from vcmlab.compose import compose_config

PROFILES = ("msp_fast", "msp_base")


def profile(name: str, channels: int) -> MultiScaleProgressive:
    """The model=<name> config's architecture at N = M = channels."""
    cfg = compose_config([f"model={name}", "experiment=lic_hyperprior"], Path("/tmp/vcmlab-bench-msp"))
    kwargs = {k: v for k, v in cfg.model.items() if k not in ("_target_", "N", "M")}
    return MultiScaleProgressive(N=channels, M=channels, **kwargs)


def models(channels: int) -> dict[str, torch.nn.Module]:
    return {
        **{name: profile(name, channels) for name in PROFILES},
        "mbt2018-mean": MeanScaleHyperprior(N=channels, M=channels),
        "cheng2020-checkerboard": Cheng2020AnchorCheckerboard(N=channels),
        "mbt2018 (serial context)": JointAutoregressiveHierarchicalPriors(N=channels, M=channels),
    }


@torch.no_grad()
def decode_seconds(model, side: int, repeats: int) -> tuple[float, int, int]:
    torch.manual_seed(0)
    out = model.compress(torch.rand(1, 3, side, side))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with counting_calls(model) as calls:
            model.decompress(out["strings"], out["shape"])
        best = min(best, time.perf_counter() - start)
    return best, calls[0], sum(len(s[0]) for s in out["strings"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/msp_decode_speed.json"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "channels": args.channels, "device": "cpu", "models": {}}
    for name, model in models(args.channels).items():
        model.eval().update(force=True)
        entry = {"complexity": measure(model, 256, 256), "decode_s": {}, "sequential_calls": {}}
        for side in args.sizes:
            seconds, calls, _ = decode_seconds(model, side, args.repeats)
            entry["decode_s"][side], entry["sequential_calls"][side] = seconds, calls
            print(f"{name:28s} {side:5d}^2  decode {seconds:7.2f} s  {calls:6d} sequential calls", flush=True)
        results["models"][name] = entry
    reference = results["models"]["mbt2018-mean"]["decode_s"]
    serial = results["models"]["mbt2018 (serial context)"]["decode_s"]
    for name in PROFILES:
        times = results["models"][name]["decode_s"]
        results["models"][name]["vs_mbt2018_mean"] = {s: times[s] / reference[s] for s in times}
        results["models"][name]["speedup_over_mbt2018"] = {s: serial[s] / times[s] for s in times}
    rows = ["| model | " + " | ".join(f"{s}² decode s" for s in args.sizes) + " | dec kMAC/px | sequential calls |"]
    rows.append("|---" * (len(args.sizes) + 3) + "|")
    for name, entry in results["models"].items():
        calls = "/".join(str(entry["sequential_calls"][s]) for s in args.sizes)
        cells = " | ".join(f"{entry['decode_s'][s]:.2f}" for s in args.sizes)
        rows.append(f"| {name} | {cells} | {entry['complexity']['decoder_kmac_per_pixel']:.1f} | {calls} |")
    results["table"] = "\n".join(rows)
    report(results, args.out)


if __name__ == "__main__":
    main()
