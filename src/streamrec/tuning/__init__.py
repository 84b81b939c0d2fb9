"""Hyperparameter tuning with Optuna: search spaces per model, a pruned validation objective, persistent studies."""

from streamrec.tuning.objective import (
    ValidationData,
    make_validation,
    make_validations,
    score_params,
    suggest,
    training_part,
)
from streamrec.tuning.spaces import DEFAULT_SPACES, check_space, search_space
from streamrec.tuning.study import FamilyResult, TrialRow, TuneResult, automl, default_storage, tune

__all__ = [
    "DEFAULT_SPACES", "FamilyResult", "TrialRow", "TuneResult", "ValidationData", "automl", "check_space",
    "default_storage", "make_validation", "make_validations", "score_params", "search_space", "suggest",
    "training_part", "tune",
]
