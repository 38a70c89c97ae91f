"""vcm-train: compose data, codec, task network, training procedure, trainer and loggers; fit."""

from __future__ import annotations

import logging

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from vcmlab import CONF_DIR
from vcmlab.callbacks import AnchorComparison, PreemptionCheckpoint
from vcmlab.checkpoints import read_checkpoint
from vcmlab.cli import report_user_errors
from vcmlab.config_checks import check_config
from vcmlab.errors import CheckpointError, Preempted
from vcmlab.instantiate import instantiate_group
from vcmlab.run_info import save_run_info

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job; returns the final callback metrics."""
    check_config(cfg)
    seed = pl.seed_everything(cfg.seed, workers=True) if cfg.get("seed") is not None else None
    if rank_zero_only.rank == 0:
        save_run_info(cfg, cfg.paths.output_dir, seed)

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None:  # fail now, not after building everything, and with the file's name
        read_checkpoint(ckpt_path, "ckpt_path")

    datamodule = instantiate(cfg.data)
    task = instantiate(cfg.task) if cfg.get("task") else None
    # model: the learned codec; experiments without one (post-filters) set it to null
    networks = {"codec": instantiate(cfg.model)} if cfg.get("model") else {}
    module = instantiate(cfg.module, task=task, **networks)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)

    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks"))
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(module.run_config)

    try:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except RuntimeError as err:
            if ckpt_path is None or "Error(s) in loading state_dict" not in str(err):
                raise
            raise CheckpointError(
                f"ckpt_path={ckpt_path} does not fit the configured model: {str(err).splitlines()[1:3]}"
            ) from None
        except SIGTERMException:
            saved = next((c.saved for c in callbacks if isinstance(c, PreemptionCheckpoint) and c.saved), None)
            where = (
                f"saved {saved}; resume with ckpt_path={saved}"
                if saved
                else "no checkpoint saved (callbacks.preemption is off)"
            )
            raise Preempted(f"received SIGTERM at step {trainer.global_step}: {where}") from None
        if cfg.get("test"):
            trainer.test(module, datamodule=datamodule)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if rank_zero_only.rank == 0:
            log.info("final metrics: %s", {k: round(v, 5) for k, v in sorted(metrics.items())})
            for table in (c.table for c in callbacks if isinstance(c, AnchorComparison) and c.table):
                log.info(table)
        return metrics
    finally:
        if any(isinstance(lg, WandbLogger) for lg in loggers):
            import wandb

            wandb.finish()  # each job of a multirun gets its own W&B run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@report_user_errors("vcm-train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric={name} was not logged; logged: {sorted(metrics)}")
    return metrics[name]


if __name__ == "__main__":
    main()
