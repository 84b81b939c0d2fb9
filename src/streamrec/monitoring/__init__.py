"""Model and data monitoring: drift of features and scores against the training-time reference, per-batch data
quality, online quality (play rate per variant, concentration, coverage over time), and a report of all of them."""

from streamrec.monitoring.alerts import Alert
from streamrec.monitoring.config import DriftThresholds, MonitoringConfig, OnlineThresholds, QualityThresholds
from streamrec.monitoring.drift import (FeatureDrift, drift_alerts, feature_drift, ks_test, psi, score_drift,
                                        served_scores, snapshot_drift)
from streamrec.monitoring.online import (Concentration, PlayRate, concentration_over_time, gini, online_alerts,
                                         play_rate_by_variant)
from streamrec.monitoring.quality import BatchCheck, check_batches, quality_alerts

__all__ = ["Alert", "BatchCheck", "Concentration", "DriftThresholds", "FeatureDrift", "MonitoringConfig",
           "OnlineThresholds", "PlayRate", "QualityThresholds", "check_batches", "concentration_over_time",
           "drift_alerts", "feature_drift", "gini", "ks_test", "online_alerts", "play_rate_by_variant", "psi",
           "quality_alerts", "score_drift", "served_scores", "snapshot_drift"]
