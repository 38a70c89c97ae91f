"""The training strategy of method 6: weights of rate, distortion and task terms over training steps.

L = w_r(t) R + w_d(t) D + w_t(t) L_task, with w_*(t) = base weight × multiplier(t). Multipliers are
keyframes interpolated linearly (or held, 'step'), so a warm-up on R + D, a ramp of the task term, or
stages with checkpoints between them are all one list in the config:

    keyframes:
      - {step: 0,   task: 0}        # R + D only
      - {step: 200, task: 0}
      - {step: 400, task: 1}        # task term ramped in over 200 steps
A key left out of a keyframe keeps its previous value (1 at the start).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Literal

TERMS = ("rate", "distortion", "task")


@dataclass(frozen=True)
class LossWeights:
    rate: float
    distortion: float
    task: float

    def combine(self, rate, distortion, task):
        """w_r·rate + w_d·distortion + w_t·task."""
        return self.rate * rate + self.distortion * distortion + self.task * task


class LossWeightSchedule:
    def __init__(
        self,
        rate_weight: float = 1.0,
        distortion_weight: float = 0.01,
        task_weight: float = 0.0,
        keyframes: list[dict] | None = None,
        interpolation: Literal["linear", "step"] = "linear",
    ):
        if interpolation not in ("linear", "step"):
            raise ValueError(f"interpolation must be 'linear' or 'step', got {interpolation!r}")
        self.base = LossWeights(rate_weight, distortion_weight, task_weight)
        self.interpolation = interpolation
        self.steps, self.multipliers = self._parse(keyframes or [])

    @staticmethod
    def _parse(keyframes: list[dict]) -> tuple[list[int], list[LossWeights]]:
        steps, multipliers = [0], [LossWeights(1.0, 1.0, 1.0)]
        for i, frame in enumerate(keyframes):
            unknown = set(frame) - {"step", *TERMS}
            if unknown or "step" not in frame:
                raise ValueError(
                    f"loss keyframe {i} {dict(frame)}: needs 'step' and only {TERMS} (unknown: {sorted(unknown)})"
                )
            step = int(frame["step"])
            if step < steps[-1] or (step == steps[-1] and i > 0):
                raise ValueError(f"loss keyframes must have increasing steps; keyframe {i} has step {step}")
            previous = multipliers[-1]
            values = LossWeights(*(float(frame.get(t, getattr(previous, t))) for t in TERMS))
            if step == 0:
                multipliers[0] = values
            else:
                steps.append(step)
                multipliers.append(values)
        return steps, multipliers

    def multipliers_at(self, step: int) -> LossWeights:
        i = bisect.bisect_right(self.steps, step) - 1
        if i == len(self.steps) - 1 or self.interpolation == "step":
            return self.multipliers[i]
        a, b = self.multipliers[i], self.multipliers[i + 1]
        f = (step - self.steps[i]) / (self.steps[i + 1] - self.steps[i])
        return LossWeights(*(getattr(a, t) + f * (getattr(b, t) - getattr(a, t)) for t in TERMS))

    def __call__(self, step: int) -> LossWeights:
        m = self.multipliers_at(step)
        return LossWeights(*(getattr(self.base, t) * getattr(m, t) for t in TERMS))

    @property
    def final(self) -> LossWeights:
        """The weights after the last keyframe: the objective the run is aiming at."""
        return self(self.steps[-1])
