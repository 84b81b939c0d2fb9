"""MLflow tracking and model registry: training runs with lineage, versions, aliases champion / challenger.

MLflow is imported only when a registry is opened, so importing this package stays cheap.
"""

from streamrec.registry.lineage import code_version, snapshot_of_batches, snapshot_of_interactions
from streamrec.registry.tracking import LoggedRun
from streamrec.registry.versions import (
    CHALLENGER,
    CHAMPION,
    AliasChange,
    Registry,
    VersionInfo,
    alias_of,
    model_folder,
    open_registry,
)

__all__ = [
    "CHALLENGER", "CHAMPION", "AliasChange", "LoggedRun", "Registry", "VersionInfo", "alias_of", "code_version",
    "model_folder", "open_registry",
    "snapshot_of_batches", "snapshot_of_interactions",
]
