"""Lightning callbacks: rate-point checkpoints, reconstruction panels, per-epoch metric tables, temperature
annealing, the checkpoint at a preemption, the comparison with JPEG/WebP at the end of a run."""

from vcmlab.callbacks.anchor_comparison import AnchorComparison
from vcmlab.callbacks.metrics_table import MetricsTable
from vcmlab.callbacks.preemption import PreemptionCheckpoint
from vcmlab.callbacks.rate_points import RatePointCheckpoint
from vcmlab.callbacks.reconstructions import ReconstructionPanel
from vcmlab.callbacks.temperature import TemperatureAnnealing

__all__ = [
    "AnchorComparison",
    "MetricsTable",
    "PreemptionCheckpoint",
    "RatePointCheckpoint",
    "ReconstructionPanel",
    "TemperatureAnnealing",
]
