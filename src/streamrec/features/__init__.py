"""Features declared once (definitions) and computed from those declarations: offline point in time (DuckDB),
snapshots of every user and title."""

from streamrec.features.definitions import BUILTIN, Feature, select
from streamrec.features.offline import point_in_time
from streamrec.features.snapshot import (
    SnapshotReport,
    build_snapshot,
    default_time,
    entity_features,
    events_relation,
)

__all__ = ["BUILTIN", "Feature", "SnapshotReport", "build_snapshot", "default_time", "entity_features",
           "events_relation", "point_in_time", "select"]
