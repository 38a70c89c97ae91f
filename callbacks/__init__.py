"""Lightning callbacks: rate-point checkpoints, reconstruction panels, per-epoch metric tables, temperature
annealing, the checkpoint at a preemption."""
from callbacks.metrics_table import MetricsTable
from callbacks.preemption import PreemptionCheckpoint
from callbacks.rate_points import RatePointCheckpoint
from callbacks.reconstructions import ReconstructionPanel
from callbacks.temperature import TemperatureAnnealing

__all__ = ["MetricsTable", "PreemptionCheckpoint", "RatePointCheckpoint", "ReconstructionPanel", "TemperatureAnnealing"]
