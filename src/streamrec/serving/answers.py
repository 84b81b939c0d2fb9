"""One list, a homepage and similar titles, with the fallback chain:
ranker fails → candidate scores (inside the pipeline); model missing or failing → trending; unknown user → cold start
(popularity in the request's region); online store unreachable → trending without the user's history (nothing known
of what they watched or hid), until it is back. Every fallback is named in the answer and counted by the caller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from scipy import sparse

from streamrec.errors import BackendError
from streamrec.logs import get_logger
from streamrec.pipeline.serving import ENGAGED
from streamrec.pipeline.sources import CONTINUE_FINISHED, NEW_RELEASE_DAYS
from streamrec.serving.models import ServedModel
from streamrec.serving.world import ServingWorld

log = get_logger(__name__)

CANDIDATE_SCORES, TRENDING, COLD_START = "candidate_scores", "trending", "cold_start"
STORE_DOWN = "store_unavailable"


@dataclass
class Answer:
    items: list[str]
    scores: list[float | None]
    sources: list[str]
    explanations: list[str | None] | None = None
    fallback: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def one_list(world: ServingWorld, model: ServedModel | None, user_id: str, k: int, region: str | None,
             exclude: Sequence[str] = (), explain: bool = False, at: datetime | None = None,
             device: str | None = None, diversity: float | None = None) -> Answer:
    at = at or world.clock()
    try:
        return _one_list(world, model, user_id, k, region, exclude, explain, at, device, diversity)
    except BackendError as exc:  # the online store is down: popular titles, without the user's history
        world.store_failed(exc)
        items = world.popular(world.context(user_id, region, exclude, use_store=False), at, k)
        return Answer(items, [None] * len(items), [TRENDING] * len(items), fallback=STORE_DOWN)


def _one_list(world: ServingWorld, model: ServedModel | None, user_id: str, k: int, region: str | None,
              exclude: Sequence[str], explain: bool, at: datetime, device: str | None,
              diversity: float | None = None) -> Answer:
    if not world.is_known(user_id):
        items = world.popular(world.context(user_id, region, exclude), at, k)
        return Answer(items, [None] * len(items), [COLD_START] * len(items), fallback=COLD_START)
    if model is not None:
        try:
            result = model.recommend(user_id, k=k, at=at, region=world.region_of(user_id, region), exclude=exclude,
                                     explain_items=explain, device=device, diversity=diversity)
        except Exception as exc:  # a model that fails on a request: trending, never a failed request
            log.error("model.request_failed", version=model.version, error=type(exc).__name__, detail=str(exc)[:200])
        else:
            texts = [e.text() for e in result.explanations] if result.explanations else None
            return Answer(result.items, result.scores, result.sources, texts, result.fallback, result.counts)
    items = world.popular(world.context(user_id, region, exclude), at, k)
    return Answer(items, [None] * len(items), [TRENDING] * len(items), fallback=TRENDING)


def similar(world: ServingWorld, model: ServedModel | None, item_id: str, k: int, region: str | None,
            at: datetime | None = None) -> Answer:
    """Titles like `item_id` (its row of item-item scores from the model) that may be shown in `region`."""
    at = at or world.clock()
    ctx = world.context("", region, [item_id], watched=False)
    scorer = model.scorer() if model is not None else None
    index = {item: i for i, item in enumerate(scorer.item_ids_)} if scorer is not None else {}
    if item_id not in index:
        items = world.popular(ctx, at, k)
        return Answer(items, [None] * len(items), [TRENDING] * len(items), fallback=TRENDING)
    ranked = _related(scorer, index[item_id])
    allowed, _ = world.filter.allowed(ctx, at)
    items, scores = [], []
    for col, score in ranked:
        cat = world.filter.index.get(scorer.item_ids_[col])
        if cat is not None and allowed[cat]:
            items.append(str(scorer.item_ids_[col]))
            scores.append(score)
            if len(items) == k:
                break
    return Answer(items, scores, [scorer.name] * len(items))


def _related(scorer, col: int) -> list[tuple[int, float]]:
    """Columns scored for a history of one title, best first (the title itself and non-positive scores left out)."""
    row = sparse.csr_matrix((np.ones(1, np.float32), ([0], [col])), shape=(1, len(scorer.item_ids_)))
    scores = np.asarray(scorer.score(row, np.full(1, -1, np.int64)), dtype=np.float64).reshape(-1)
    scores[col] = -np.inf
    order = np.argsort(-scores, kind="stable")
    return [(int(c), float(scores[c])) for c in order if np.isfinite(scores[c]) and scores[c] > 0]


@dataclass
class HomeRow:
    id: str
    title: str
    items: list[str]
    scores: list[float | None]
    sources: list[str]
    weight: float  # the row's place on this user's page: higher first


def home(world: ServingWorld, model: ServedModel | None, user_id: str, n: int, region: str | None,
         at: datetime | None = None, device: str | None = None,
         diversity: float | None = None) -> tuple[list[HomeRow], str | None, dict[str, int]]:
    """The homepage rows of a user, ordered for them, no title in two rows; and the fallback that answered."""
    at = at or world.clock()
    try:
        return _home(world, model, user_id, n, region, at, device, diversity)
    except BackendError as exc:  # the online store is down: trending and new releases, without the user's history
        world.store_failed(exc)
        ctx = world.context(user_id, region, use_store=False)
        popular = world.popular(ctx, at, n)
        fresh = _new_releases(world, ctx, at, n, set(popular))
        rows = [HomeRow("trending", "Trending Now", popular, [None] * len(popular), [STORE_DOWN] * len(popular), 2.0),
                HomeRow("new_releases", "New Releases", fresh, [None] * len(fresh), ["new_releases"] * len(fresh), 1.0)]
        return [r for r in rows if r.items], STORE_DOWN, {}


def _home(world: ServingWorld, model: ServedModel | None, user_id: str, n: int, region: str | None,
          at: datetime, device: str | None,
          diversity: float | None = None) -> tuple[list[HomeRow], str | None, dict[str, int]]:
    used: set[str] = set()
    rows: list[HomeRow] = []

    def add(row_id: str, title: str, items: list[str], scores: list, sources: list[str], weight: float) -> None:
        keep = [i for i, item in enumerate(items) if item not in used][:n]
        if keep:
            used.update(items[i] for i in keep)
            rows.append(HomeRow(row_id, title, [items[i] for i in keep], [scores[i] for i in keep],
                                [sources[i] for i in keep], weight))

    ctx = world.context(user_id, region)
    history = world.store.history(user_id)
    if not world.is_known(user_id):
        popular = world.popular(ctx, at, n)
        add("trending", "Trending Now", popular, [None] * len(popular), [COLD_START] * len(popular), 2.0)
        fresh = _new_releases(world, ctx, at, n, used)
        add("new_releases", "New Releases", fresh, [None] * len(fresh), ["new_releases"] * len(fresh), 1.0)
        return rows, COLD_START, {}
    started = _continue_watching(world, user_id, region, history, at, n)
    add("continue_watching", "Continue Watching", started, [None] * len(started),
        ["continue_watching"] * len(started), 10.0)
    engaged = len({e.item_id for e in history if e.type in ENGAGED})
    answer = one_list(world, model, user_id, 2 * n, region, exclude=sorted(used), at=at, device=device,
                      diversity=diversity)
    picks_weight = 3.0 if engaged >= 3 else 0.5  # few plays: trending says more than personal picks
    add("top_picks", "Top Picks for You", answer.items, answer.scores, answer.sources, picks_weight)
    anchor = _anchor(history, model)
    if anchor is not None:
        scorer = model.scorer()  # type: ignore[union-attr]
        col = {item: i for i, item in enumerate(scorer.item_ids_)}[anchor]
        allowed, _ = world.filter.allowed(ctx, at)
        like = [(str(scorer.item_ids_[c]), s) for c, s in _related(scorer, col)[:5 * n]
                if (cat := world.filter.index.get(scorer.item_ids_[c])) is not None and allowed[cat]]
        add("because_you_watched", f"Because You Watched {_name(world, anchor)}", [i for i, _ in like],
            [s for _, s in like], [scorer.name] * len(like), 2.0)
    popular = world.popular(ctx, at, n, skip=used)
    add("trending", "Trending Now", popular, [None] * len(popular), [TRENDING] * len(popular),
        1.0 if engaged >= 3 else 2.5)
    fresh = _new_releases(world, ctx, at, n, used)
    add("new_releases", "New Releases", fresh, [None] * len(fresh), ["new_releases"] * len(fresh),
        0.8 + 2.0 * _new_release_share(world, history, at))
    rows.sort(key=lambda r: -r.weight)
    return rows, answer.fallback, answer.counts


def _continue_watching(world: ServingWorld, user_id: str, region: str | None, history, at: datetime,
                       n: int) -> list[str]:
    """Started, not finished, latest first; still allowed (watched titles are the point of this row)."""
    state: dict[str, list] = {}
    for e in history:
        if e.ts >= at or e.type not in ENGAGED:
            continue
        s = state.setdefault(e.item_id, [False, 0.0, e.ts])
        s[0] |= e.type == "complete"
        s[1] = max(s[1], e.fraction or 0.0)
        s[2] = max(s[2], e.ts)
    allowed, _ = world.filter.allowed(world.context(user_id, region, watched=False), at)
    started = sorted(((s[2], item) for item, s in state.items() if not s[0] and s[1] < CONTINUE_FINISHED),
                     reverse=True)
    return [item for _, item in started
            if (col := world.filter.index.get(item)) is not None and allowed[col]][:n]


def _anchor(history, model: ServedModel | None) -> str | None:
    """The latest watched title the model knows ('Because You Watched X')."""
    if model is None:
        return None
    known = set(model.scorer().item_ids_.tolist())
    for e in reversed(history):
        if e.type in ("play", "complete") and e.item_id in known:
            return e.item_id
    return None


def _name(world: ServingWorld, item_id: str) -> str:
    return world.names.get(item_id) or item_id


def _new_releases(world: ServingWorld, ctx, at: datetime, n: int, used: set[str]) -> list[str]:
    release = world.release
    start = np.datetime64((at - timedelta(days=NEW_RELEASE_DAYS)).date(), "D")
    allowed, _ = world.filter.allowed(ctx, at)
    ok = allowed & (release >= start) & (release <= np.datetime64(at.date(), "D"))
    cols = np.flatnonzero(ok)
    cols = cols[np.argsort(release[cols], kind="stable")[::-1]]
    return [item for item in world.filter.item_ids[cols].tolist() if item not in used][:n]


def _new_release_share(world: ServingWorld, history, at: datetime) -> float:
    release = world.release
    start = np.datetime64((at - timedelta(days=NEW_RELEASE_DAYS)).date(), "D")
    cols = [world.filter.index[e.item_id] for e in history if e.type in ENGAGED and e.item_id in world.filter.index]
    return float(np.mean(release[cols] >= start)) if cols else 0.0
