"""The web dashboard served by the API at /dashboard: overview (traffic, latency, errors, fallbacks over time), models
(registry versions, offline metrics, lineage, champion and challenger), experiments (metrics with intervals over time,
decisions) and data (ingestion volumes, batch quality, drift). Pages are static HTML and JavaScript (Chart.js, vendored
under static/) that fetch JSON from /dashboard/api/PAGE."""

from streamrec.monitoring.dashboard.web import PAGES, Dashboard

__all__ = ["PAGES", "Dashboard"]
