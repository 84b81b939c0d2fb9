"""The ranking pipeline: candidates → filter → rank → re-rank → explain. So far: candidates and filters."""

from streamrec.pipeline.candidates import (
    CandidateSet,
    CandidateSource,
    FixedListSource,
    ModelSource,
    candidate_recall,
    gather,
)
from streamrec.pipeline.filters import REASONS, CatalogFilter, FilterPolicy, UserContext

__all__ = ["REASONS", "CandidateSet", "CandidateSource", "CatalogFilter", "FilterPolicy", "FixedListSource",
           "ModelSource", "UserContext", "candidate_recall", "gather"]
