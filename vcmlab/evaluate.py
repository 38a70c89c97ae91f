"""vcm-eval: code every image of a dataset into real bitstream files, at every rate point of a learned
codec (one checkpoint each) or a conventional codec (QP ladder × resize ladder), decode them with a
separately built receiver, and measure rate, quality and (with a task network) machine-task accuracy
against the annotations or, with `metric_reference=uncompressed`, against the task network's own
predictions on the uncompressed images. The parts live in vcmlab/evaluation/.

Outputs under the run directory: <rate point>/{bitstreams/, records/, per_image.csv, predictions.json,
summary.json}, summaries.json (all rate points, the input of vcm-bdrate), rd_plot.png and
eval_manifest.json (what a resumed run or a merge of shards checks). `workers=N` codes in N processes,
`shard=i num_shards=K` codes every K-th image, and `vcm-eval-merge RUN_DIRS... [overrides]` (merge mode:
`merge='[DIR,...]'`) combines the shards (vcmlab/evaluation/images.py).

Rates: `bpp` counts the codec's payload (entropy-coded or standard stream plus side information), what
BD-rates compare; `file_bpp` counts every byte of the file; the difference is container (checksums,
model fingerprint, size prefixes), reported as `container_bytes`. Conventional streams are sealed with
a checksum (conventional_codecs.container), so a damaged file is refused, not scored.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vcmlab import CONF_DIR
from vcmlab.cli import report_user_errors
from vcmlab.evaluation import evaluate


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@report_user_errors("vcm-eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


def merge_main() -> None:
    """vcm-eval-merge RUN_DIR... [key=value ...]: vcm-eval in merge mode over the given run directories."""
    dirs = [a for a in sys.argv[1:] if "=" not in a and not a.startswith("-")]
    rest = [a for a in sys.argv[1:] if a not in dirs]
    if not dirs:
        sys.exit("usage: vcm-eval-merge RUN_DIR... [key=value ...]: the run directories of every shard")
    quoted = ",".join("'" + d.replace("\\", "\\\\").replace("'", "\\'") + "'" for d in dirs)
    sys.argv = [sys.argv[0], f"merge=[{quoted}]", *rest]
    main()


if __name__ == "__main__":
    main()
