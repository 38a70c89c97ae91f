"""Lightning callbacks: rate-point checkpoints, reconstruction panels, per-epoch metric tables."""
from callbacks.metrics_table import MetricsTable
from callbacks.rate_points import RatePointCheckpoint
from callbacks.reconstructions import ReconstructionPanel

__all__ = ["MetricsTable", "RatePointCheckpoint", "ReconstructionPanel"]
