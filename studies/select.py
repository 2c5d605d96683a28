"""Select, then report: a setting chosen on some seeds by a rule fixed before looking, then run on fresh seeds.

Every study that chooses (the testbed's weights, the lag's variants, the regime map's cell, the images' verdict)
scores its candidates on the selection seeds and takes :func:`choose`'s answer; the report seeds are never read
before the choice is made."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from multiview.records import StudentRecord

K = TypeVar("K", bound=Hashable)


def student_scores(students: Sequence[StudentRecord]) -> dict[str, float]:
    """Mean single-view failure, own views kept (1 where no student has own views) and multi-view error."""
    kept = [s.own_views_kept for s in students if s.own_views_kept is not None]
    return {"failure": float(np.mean([s.single_view_failure for s in students])),
            "own_views_kept": float(np.mean(kept)) if kept else 1.0,
            "multi_view_error": float(np.mean([s.multi_view_error for s in students]))}


def choose(scores: Mapping[K, Mapping[str, Any]], eligible: Callable[[Mapping[str, Any]], bool], key: str,
           fallback: K | None = None, highest: bool = False) -> K:
    """The candidate with the lowest (``highest``: the highest) ``scores[c][key]`` among those ``eligible`` accepts;
    where none is eligible, ``fallback``, or the best of all candidates when no fallback is given."""
    ok = [c for c, v in scores.items() if eligible(v)]
    if not ok and fallback is not None:
        return fallback
    pool = ok or list(scores)
    pick = max if highest else min
    return pick(pool, key=lambda c: scores[c][key])
