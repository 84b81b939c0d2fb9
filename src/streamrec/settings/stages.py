"""The settings of each stage of the data flow: ingest, preprocess, the registry, splits and training, tuning's
search spaces, the ranked pipeline, serving and logging."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator


class IngestConfig(BaseModel, extra="forbid"):
    """Validation rules and policies for ingestion (shared by batch files and the events API)."""

    unknown_titles: Literal["quarantine", "accept"] = Field(
        "quarantine", description="events for titles not in the catalog (checked only once a catalog is loaded)"
    )
    unknown_users: Literal["accept", "quarantine"] = Field(
        "accept", description="events for users without a profile: accept (profile created later) or quarantine"
    )
    ts_floor: str = Field("1995-01-01", description="events before this UTC date are rejected")
    max_future_s: int = Field(300, ge=0, description="events more than this many seconds in the future are rejected")
    max_file_mb: int = Field(8192, ge=1, description="files larger than this are refused before reading")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)


class PreprocessConfig(BaseModel, extra="forbid"):
    """Cleaning and weighting of stored events before training."""

    session_gap_s: int = Field(30 * 60, gt=0, description="inactivity that starts a new session")
    bot_max_events_per_min: float = Field(60.0, gt=0, description="users above this sustained rate are bots")
    bot_min_events: int = Field(50, ge=1, description="only users with at least this many events are checked")
    min_user_interactions: int = Field(1, ge=1, description="k-core: users with fewer positives are dropped")
    min_item_interactions: int = Field(1, ge=1, description="k-core: titles with fewer positives are dropped")
    play_weight: float = Field(1.0, ge=0)
    complete_weight: float = Field(3.0, ge=0)
    add_to_list_weight: float = Field(1.0, ge=0)
    rating_weight: float = Field(1.0, ge=0, description="weight of a rating at the top of the scale")
    rating_scale_max: float | None = Field(
        None, gt=0, description="top of the rating scale; default: 5 if every rating is <= 5, else 10"
    )
    rating_neutral: float = Field(
        0.5, ge=0, lt=1, description="share of the scale that adds nothing; lower ratings subtract weight"
    )
    complete_fraction: float = Field(0.9, gt=0, le=1, description="progress at or above this counts as completed")
    bot_max_watch_ratio: float = Field(
        1.0, gt=0, description="bots watch more seconds than this many times a watch window's length"
    )
    bot_rate_types: list[Literal["impression", "play", "progress", "complete", "rating", "add_to_list"]] = Field(
        default_factory=lambda: ["impression", "play", "progress", "complete", "add_to_list"],
        description="event types counted by the event-rate check (impressions: one per request); ratings are "
        "left out by default because rating pages (MovieLens) legitimately produce bursts",
    )
    bot_watch_window_s: int = Field(24 * 3600, gt=0, description="length of the watch-time window (tumbling)")
    bot_max_titles_per_hour: int = Field(40, ge=1, description="users playing more distinct titles in an hour are bots")
    quality_late_after_h: float = Field(
        24.0, gt=0, description="quality: events older than this before a batch's newest event are late"
    )


class RegistryConfig(BaseModel, extra="forbid"):
    """MLflow tracking and model registry (aliases champion / challenger). A server is only a different URI."""

    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default sqlite:///DATA_DIR/mlflow.db")
    registry_uri: str | None = Field(None, description="MLflow model registry URI; default: the tracking URI")
    artifact_location: str | None = Field(
        None, description="artifact root of a new experiment; default DATA_DIR/mlartifacts for a local (sqlite/file) "
        "store, the server's own default otherwise"
    )
    experiment: str = Field("streamrec", min_length=1, description="MLflow experiment that training runs go to")
    model_name: str = Field("streamrec-recommender", min_length=1, description="registered model name")
    http_max_retries: int = Field(2, ge=0, description="retries of a request to a tracking server")
    http_timeout_s: int = Field(30, ge=1, description="seconds before a request to a tracking server fails")


class SplitConfig(BaseModel, extra="forbid"):
    """How `train` and `evaluate` hold data out."""

    kind: Literal["temporal", "stratified", "leave_last_n", "strong"] = Field(
        "temporal", description="temporal: train before a time, test after; stratified: per-user or per-item "
        "random (Microsoft Recommenders' python_stratified_split); leave_last_n; strong: held-out users"
    )
    quantile: float = Field(0.8, gt=0, lt=1, description="temporal: share of the time range used for training")
    ratio: float = Field(0.75, gt=0, lt=1, description="stratified: share of each group's rows for training")
    by: Literal["user", "item"] = Field("user", description="stratified: group by user or by item")
    n: int = Field(1, ge=1, description="leave_last_n: rows per user held out")
    heldout_users: float = Field(0.2, gt=0, description="strong: share (<1) or number of held-out users")
    seed: int = 42


class TrainConfig(BaseModel, extra="forbid"):
    """Which models `train` fits and compares, and how the winner is chosen and kept."""

    models: list[str] = Field(
        default_factory=lambda: ["popularity", "item_knn", "rp3beta", "ease", "als", "bpr"],
        description="model names (streamrec.models.MODELS) to compare",
    )
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="hyperparameters per model name")
    split: SplitConfig = Field(default_factory=SplitConfig)
    k: int = Field(10, ge=1, le=1000, description="the cut-off of the comparison metric")
    metric: str = Field("ndcg", description="ndcg, recall, precision, map, hit_rate or mrr (at k)")
    refit_on_all: bool = Field(True, description="refit the winner on all data before registering it")
    promote: Literal["if_better", "always", "never"] = Field(
        "if_better", description="make the new version champion: when it beats the champion's metric, always, never"
    )


class FloatDistribution(BaseModel, extra="forbid"):
    """A float hyperparameter drawn from [low, high] (log scale when `log`)."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> "FloatDistribution":
        _check_range(self.low, self.high, self.log)
        return self


class IntDistribution(BaseModel, extra="forbid"):
    """An integer hyperparameter drawn from [low, high] (log scale when `log`)."""

    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> "IntDistribution":
        _check_range(self.low, self.high, self.log)
        return self


class CategoricalDistribution(BaseModel, extra="forbid"):
    """A hyperparameter drawn from a list of choices (strings, numbers, booleans)."""

    type: Literal["categorical"] = "categorical"
    choices: list[str | bool | int | float] = Field(min_length=1)


class FixedValue(BaseModel, extra="forbid"):
    """A hyperparameter held at one value (takes a default one out of the search)."""

    type: Literal["fixed"] = "fixed"
    value: str | bool | int | float | None


Distribution = Annotated[
    FloatDistribution | IntDistribution | CategoricalDistribution | FixedValue, Field(discriminator="type")
]


def _check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0, got {low}")


class TuningConfig(BaseModel, extra="forbid"):
    """`streamrec tune`: search spaces, the validation carved from the training part, pruning, study storage."""

    spaces: dict[str, dict[str, Distribution]] = Field(
        default_factory=dict,
        description="per model, parameter -> distribution; merged over the built-in space of that model "
        "(streamrec.tuning.spaces.DEFAULT_SPACES), parameter by parameter; {type='fixed', value=...} pins one",
    )
    n_trials: int = Field(30, ge=1, le=100_000, description="trials per `tune` run when neither --trials nor "
                                                            "--timeout is given")
    timeout_s: float | None = Field(None, gt=0, description="stop starting trials after this many seconds")
    validation: Literal["stratified", "temporal"] = Field(
        "stratified", description="how validation is carved from the training part: per-user random, or by time")
    ratio: float = Field(0.8, gt=0, lt=1, description="stratified: share of each user's rows kept for fitting")
    folds: int = Field(
        1, ge=1, le=10, description="stratified: validation folds (seeds seed, seed+1, ...); a trial's value is the "
        "mean over all of them — less noise between close configurations, at folds × the cost")
    quantile: float = Field(0.8, gt=0, lt=1, description="temporal: share of the time range kept for fitting")
    holdout: bool = Field(
        True, description="first drop the test part of train.split, so tuning never sees what `train` and "
        "`evaluate` test on")
    k: int = Field(10, ge=1, le=1000, description="cut-off of the validation metric")
    metric: str = Field("ndcg", description="ndcg, recall, precision, map, hit_rate or mrr (at k)")
    chunks: int = Field(5, ge=1, le=100, description="validation users are scored in this many chunks; the "
                                                     "running mean is reported after each (pruning steps)")
    max_val_users: int | None = Field(
        None, ge=1, description="score at most this many (random) validation users per trial")
    pruner_startup_trials: int = Field(5, ge=0, description="trials that run to the end before pruning starts")
    pruner_warmup_steps: int = Field(
        1, ge=0, description="chunks a trial always scores before it can be pruned (the first is noisy)")
    seed: int | None = Field(None, description="sampler and split seed; default: the settings' seed")
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite:///DATA_DIR/optuna.db")
    automl_models: list[str] = Field(
        default_factory=lambda: ["popularity", "item_knn", "rp3beta", "ease", "als", "bpr"],
        description="model families `tune --automl` searches over")


class FilterPolicy(BaseModel, extra="forbid"):
    """Business rules of the filter stage (streamrec.pipeline.filters)."""

    rewatch_after_days: float | None = Field(
        None, gt=0, description="watched titles come back after this many days (None: never)")
    blocklist: list[str] = Field(default_factory=list, description="title ids never shown to anyone")
    unknown_maturity: str = Field("18+", description="maturity assumed for titles without one (strictest: safe)")
    require_availability: bool = Field(
        True, description="a title without any availability window is not shown (False: shown everywhere); a "
                          "catalog without any availability data at all (MovieLens) shows every title everywhere")


class RankerConfig(BaseModel, extra="forbid"):
    """The LightGBM LambdaMART ranker (streamrec.pipeline.ranker)."""

    n_estimators: int = Field(300, ge=1, le=10_000)
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(31, ge=2, le=4096)
    min_child_samples: int = Field(20, ge=1)
    seed: int = Field(42, ge=0)
    num_threads: int = Field(0, ge=0, description="LightGBM threads (0: all cores)")
    early_stopping_rounds: int = Field(
        30, ge=0, description="stop when NDCG@10 on held-out users has not improved for this many trees (0: off)")
    validation_share: float = Field(0.2, gt=0, lt=1, description="share of users held out for early stopping")


class PipelineConfig(BaseModel, extra="forbid"):
    """The ranked pipeline: candidate quotas, filters, ranker, diversity."""

    quotas: dict[str, int] = Field(
        default_factory=lambda: {"ease": 100, "als": 100, "trending": 50, "continue_watching": 10,
                                 "new_releases": 20},
        description="candidates per user from each source (a source left out is not used)")
    filters: FilterPolicy = Field(default_factory=FilterPolicy)
    ranker: RankerConfig = Field(default_factory=RankerConfig)
    diversity: float = Field(0.3, ge=0, le=1, description="MMR weight of genre diversity (0: off)")
    vector_index: dict[str, Any] = Field(
        default_factory=lambda: {"type": "exact"},
        description="how factor-model sources (ALS) search item vectors: {type = 'exact'} (numpy, default) or "
                    "{type = 'faiss', structure = 'hnsw', m = 32, ef_search = 256, ...} (the ann extra)")
    impression_negatives: bool = Field(
        False, description="titles shown but not engaged with join the ranker's negatives (off: on the synthetic "
                           "worlds they cost about 1% NDCG@10 against unwatched candidates as negatives alone)")
    features_file: Path | None = Field(
        None, description="JSON of extra feature definitions for the ranker (from `features select`)")

    @model_validator(mode="after")
    def _positive_quotas(self) -> PipelineConfig:
        bad = {k: v for k, v in self.quotas.items() if v < 1}
        if bad:
            raise ValueError(f"quotas must be ≥ 1, got {bad}")
        return self


class ServingConfig(BaseModel, extra="forbid"):
    """`streamrec serve`: the HTTP API (streamrec.serving)."""

    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    model: str = Field("champion", min_length=1, description="what to serve: a registry alias or version, or a "
                                                             "saved model folder")
    follow_alias_s: float = Field(30.0, ge=0, description="when the served model came from a registry alias "
                                  "(champion ...), every API process checks the alias this often and swaps in a newly "
                                  "promoted version as /v1/admin/reload does; 0: off. A version number is not followed")
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="keys accepted in X-API-Key for POST /v1/events and /v1/admin/* "
        "(STREAMREC_SERVING__API_KEYS='[\"...\"]'); none: those endpoints refuse every request")
    max_k: int = Field(100, ge=1, le=10_000, description="most titles one list may ask for")
    max_batch: int = Field(1000, ge=1, description="most events in one POST /v1/events")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger request bodies are refused (413)")
    max_exclude: int = Field(500, ge=0, description="most titles one request may exclude")
    row_size: int = Field(10, ge=1, le=100, description="titles per homepage row")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (none: CORS off)")
    max_feature_age_s: int = Field(2 * 86_400, ge=1, description="older online features count as missing")
    clock: Literal["now", "data"] = Field(
        "now", description="request time: the wall clock, or 'data': just after the store's newest event, moving "
                           "on with the wall clock (for a synthetic world whose events lie in the past)")
    default_region: str | None = Field(None, description="region of a request without one for an unknown user "
                                                         "(default: the most common region of the profiles)")
    trending_days: float = Field(7.0, gt=0, description="trending counts engagements of this many last days")
    ranked_ttl_s: float = Field(
        300.0, ge=0, description="how long (in request time) a user's ranked pool from the refresh path answers "
                                 "requests while their history is unchanged; 0: every request runs the whole pipeline")
    land_events: bool = Field(True, description="write accepted live events under DATA_DIR/incoming/live (one "
                                                "Parquet part per batch) for `streamrec ingest`")
    hold_events: bool = Field(True, description="while a Redis event bus cannot be reached, POST /v1/events keeps "
                              "accepted batches under DATA_DIR/outbox/events (fsynced) and publishes them once it is "
                              "back (202 with `held`); false: it answers 503 and the client retries")
    warm_pools: int = Field(0, ge=0, description="at model load, before the swap, rank the pools of this many "
                                                 "profiles, most recently active first (the batch refresh path)")
    ranked_pool: int = Field(100, ge=50, le=10_000, description="titles kept per ranked pool (requests with more "
                                                                "exclusions than it can spare run the whole pipeline)")
    served_sample: float = Field(1.0, ge=0, le=1, description="share of list and homepage responses written to "
                                 "DATA_DIR/monitoring/served (titles, scores, variant) for `streamrec monitor`; 0: off")


class LoggingConfig(BaseModel, extra="forbid"):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_logs: bool = Field(False, alias="json", description="JSON lines (services) instead of console output")
    user_salt: SecretStr | None = Field(
        None, description="salt of the hashed user ids in logs (default: the STREAMREC_LOG_SALT environment "
                          "variable, else a fixed salt); STREAMREC_LOGGING__USER_SALT sets it too")
