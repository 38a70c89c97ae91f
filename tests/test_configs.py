"""Every config composes; every experiment instantiates; bad keys and names fail clearly."""

import importlib.util
import json

import pytest
import pytorch_lightning as pl
from hydra.errors import ConfigCompositionException, InstantiationException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from vcmlab import CONF_DIR
from vcmlab.compose import compose_config
from vcmlab.config_checks import check_config
from vcmlab.errors import ConfigError
from vcmlab.instantiate import instantiate_group

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    for group in ("data", "model", "task", "module", "trainer", "logger", "callbacks", "debug")
}


def test_all_groups_the_foundation_needs_exist():
    assert {"icm_e2e", "lic_hyperprior"} <= set(EXPERIMENTS)
    assert {"cpu", "gpu", "ddp", "ddp_sim"} <= set(GROUP_OPTIONS["trainer"])
    assert {"wandb", "csv", "none"} <= set(GROUP_OPTIONS["logger"])
    assert {"fdr", "overfit", "limit"} <= set(GROUP_OPTIONS["debug"])
    assert {"sample", "image_folder", "openimages"} <= set(GROUP_OPTIONS["data"])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}", "trainer=cpu"], tmp_path)
    datamodule = instantiate(cfg.data)
    task = instantiate(cfg.task) if cfg.get("task") else None
    networks = {"codec": instantiate(cfg.model)} if cfg.get("model") else {}  # as vcm-train does
    module = instantiate(cfg.module, task=task, **networks)
    assert isinstance(module, pl.LightningModule) and datamodule is not None
    trainer = instantiate(cfg.trainer, callbacks=instantiate_group(cfg.callbacks), logger=False)
    assert trainer.max_steps == cfg.trainer.max_steps


# experiment -> the models it trains
FAMILIES = {"lossless_msp": "lossless", "video_ssf": "video", "video_e2e": "video"}
MODEL_FAMILIES = {"lossless_msp": "lossless", "ssf": "video", "video_e2e": "video"}


@pytest.mark.parametrize("model", GROUP_OPTIONS["model"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_model_composes_with_every_experiment_that_takes_one(experiment, model, tmp_path):
    if not compose_config([f"experiment={experiment}"], tmp_path).get("model"):
        pytest.skip(f"experiment={experiment} takes no codec model")
    cfg = compose_config([f"experiment={experiment}", f"model={model}", "trainer=cpu"], tmp_path)
    task = instantiate(cfg.task) if cfg.get("task") else None
    if FAMILIES.get(experiment, "image") != MODEL_FAMILIES.get(model, "image"):  # image/video/lossless
        # refused as vcm-train refuses it: by the config check (an image experiment's model.N) or the module
        with pytest.raises(
            (ConfigError, InstantiationException), match="lossless|lossy|takes no argument|is not an argument"
        ):
            check_config(cfg)
            instantiate(cfg.module, task=task, codec=instantiate(cfg.model))
        return
    module = instantiate(cfg.module, task=task, codec=instantiate(cfg.model))
    assert type(module.codec).__name__ == cfg.model._target_.rsplit(".", 1)[1]


@pytest.mark.parametrize("group", sorted(GROUP_OPTIONS))
def test_every_group_option_composes(group, tmp_path):
    """Each option composes, and each changes the composed config: no two options of a group give the
    same result (an option that failed to apply would equal the default's)."""
    composed = {}
    for option in GROUP_OPTIONS[group]:
        overrides = [f"{group}={option}", "experiment=lic_hyperprior"]  # an experiment without a task
        cfg = compose_config(overrides, tmp_path)
        assert cfg.hydra.runtime.choices[group] == option
        content = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
        composed[option] = json.dumps(content, sort_keys=True, default=str)
    assert len(set(composed.values())) == len(composed), composed.keys()


@pytest.mark.parametrize("trainer", ["cpu", "ddp_sim"])
def test_cpu_trainers_instantiate(trainer, tmp_path):
    cfg = compose_config([f"trainer={trainer}"], tmp_path)
    t = instantiate(cfg.trainer, logger=False)
    assert t.num_devices == (2 if trainer == "ddp_sim" else 1)


def test_unknown_experiment_is_refused(tmp_path):
    with pytest.raises(MissingConfigException, match="experiment/nonexistent"):
        compose_config(["experiment=nonexistent"], tmp_path)


@pytest.mark.parametrize("override", ["module.loss.lamda=0.1", "trainer.max_stepz=3", "nonsense=1"])
def test_unknown_config_keys_are_refused(override, tmp_path):
    with pytest.raises((ConfigCompositionException, ConfigAttributeError, ConfigKeyError)):
        compose_config([override], tmp_path)


def test_added_keys_the_code_does_not_take_are_refused(tmp_path):
    cfg = compose_config(["+model.width=3"], tmp_path)
    with pytest.raises(Exception, match="width"):
        instantiate(cfg.model)


def test_task_weight_without_task_network_is_refused(tmp_path):
    cfg = compose_config(["experiment=icm_e2e", "task=none"], tmp_path)
    with pytest.raises(Exception, match="needs a task network"):  # Hydra wraps it in InstantiationException
        instantiate(cfg.module, codec=instantiate(cfg.model), task=None)


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None, reason="pip install 'vcmlab[optuna]'"
)
def test_optuna_sweep_config_composes(tmp_path):
    cfg = compose_config(["hparams_search=optuna_lr"], tmp_path)
    assert cfg.optimized_metric == "val/rd_loss"
    assert "module.optimizer.lr" in cfg.hydra.sweeper.params


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None, reason="pip install 'vcmlab[slurm]'"
)
def test_slurm_launcher_config_composes(tmp_path):
    cfg = compose_config(["hydra/launcher=slurm"], tmp_path)
    assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node
    shards = compose_config(["hydra/launcher=slurm_eval", "workers=16"], tmp_path, "eval")
    assert shards.hydra.launcher.cpus_per_task == 16 and shards.hydra.launcher.gpus_per_node == 0


def test_no_generic_top_level_import_name(tmp_path):
    """callbacks/ installs as vcmlab.callbacks: a top-level `callbacks` would clash with the PyPI
    distribution of that name. Checked from outside the source tree, as a user imports it."""
    import subprocess
    import sys

    script = (
        "import importlib.util, vcmlab.callbacks; print(importlib.util.find_spec('callbacks'), "
        "vcmlab.callbacks.RatePointCheckpoint.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["None", "RatePointCheckpoint"]
