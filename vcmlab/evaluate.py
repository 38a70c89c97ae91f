"""vcm-eval: code every image of a dataset into real bitstream files, at every rate point of a learned
codec (one checkpoint each) or a conventional codec (QP ladder × resize ladder), decode them with a
separately built receiver, and measure rate, quality and (with a task network) machine-task accuracy
against the annotations or, with `metric_reference=uncompressed`, against the task network's own
predictions on the uncompressed images. The parts live in vcmlab/evaluation/.

Outputs under the run directory: <rate point>/{bitstreams/, per_image.csv, predictions.json,
summary.json}, summaries.json (all rate points, the input of vcm-bdrate) and rd_plot.png.

Rates: `bpp` counts the codec's payload (entropy-coded or standard stream plus side information), what
BD-rates compare; `file_bpp` counts every byte of the file; the difference is container (checksums,
model fingerprint, size prefixes), reported as `container_bytes`. Conventional streams are sealed with
a checksum (conventional_codecs.container), so a damaged file is refused, not scored.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vcmlab import CONF_DIR
from vcmlab.cli import report_user_errors
from vcmlab.evaluation import evaluate


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@report_user_errors("vcm-eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
