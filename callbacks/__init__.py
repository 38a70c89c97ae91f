"""Lightning callbacks: rate-point checkpoints, reconstruction panels, per-epoch metric tables, temperature
annealing, the checkpoint at a preemption."""
from vcmlab.callbacks.metrics_table import MetricsTable
from vcmlab.callbacks.preemption import PreemptionCheckpoint
from vcmlab.callbacks.rate_points import RatePointCheckpoint
from vcmlab.callbacks.reconstructions import ReconstructionPanel
from vcmlab.callbacks.temperature import TemperatureAnnealing

__all__ = ["MetricsTable", "PreemptionCheckpoint", "RatePointCheckpoint", "ReconstructionPanel", "TemperatureAnnealing"]
