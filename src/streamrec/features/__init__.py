"""Features declared once (definitions) and computed from those declarations: offline point in time (DuckDB),
online one event at a time (proved equal), snapshots of every user and title."""

from streamrec.features.definitions import BUILTIN, Feature, select
from streamrec.features.offline import point_in_time
from streamrec.features.online import OnlineFeatures
from streamrec.features.snapshot import (
    SnapshotReport,
    build_snapshot,
    default_time,
    entity_features,
    events_relation,
)

__all__ = ["BUILTIN", "Feature", "OnlineFeatures", "SnapshotReport", "build_snapshot", "default_time", "entity_features",
           "events_relation", "point_in_time", "select"]
