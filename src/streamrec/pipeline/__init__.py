"""The ranking pipeline: candidates → filter → rank → re-rank → explain. So far: the filter stage."""

from streamrec.pipeline.filters import REASONS, CatalogFilter, FilterPolicy, UserContext

__all__ = ["REASONS", "CatalogFilter", "FilterPolicy", "UserContext"]
