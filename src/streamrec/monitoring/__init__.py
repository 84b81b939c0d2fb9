"""Model and data monitoring: drift between feature snapshots, per-batch data quality, and a report of both."""

from streamrec.monitoring.alerts import Alert
from streamrec.monitoring.config import DriftThresholds, MonitoringConfig, QualityThresholds
from streamrec.monitoring.drift import FeatureDrift, drift_alerts, feature_drift, ks_test, psi, snapshot_drift
from streamrec.monitoring.quality import BatchCheck, check_batches, quality_alerts

__all__ = ["Alert", "BatchCheck", "DriftThresholds", "FeatureDrift", "MonitoringConfig", "QualityThresholds",
           "check_batches", "drift_alerts", "feature_drift", "ks_test", "psi", "quality_alerts", "snapshot_drift"]
