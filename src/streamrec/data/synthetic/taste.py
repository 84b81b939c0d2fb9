"""The ground-truth response model of a synthetic world: true utility, choice, watch completion, ratings.

One module so the world generator and the later viewer simulator answer recommendations the same way:

    utility(u, i, day) = u·v + affinity_u·genres_i + w_pop·z(log popularity_i) + w_language·[same language]
                         + novelty_boost·exp(-(day - release_day_i) / novelty_days)   (after release)
    surplus(u, i, day) = utility - reference_u, where reference_u is the user's expected utility of their
                         `reference_rank`-th best title (so behaviour does not drift with catalog size)
    a slate is a discrete choice: P(play slot j) ∝ exp(choice_scale·surplus_j - position_decay·position_j + bonus_j),
    against an outside option exp(outside_logit) (nothing played)
    P(complete) = sigmoid(complete_slope·(surplus - complete_mid)); ratings 1..5 rise with surplus
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field
from scipy.special import ndtri

from streamrec.errors import ChecksumError, NotFound

if TYPE_CHECKING:
    from streamrec.data.dataset import Dataset

TRUTH_VERSION = 1
TRUTH_JSON = "truth.json"


class ResponseParams(BaseModel, extra="forbid"):
    """Parameters of the viewers' true response (utility scale, choice, completion, ratings)."""

    taste_std: float = Field(1.0, gt=0, description="std of the latent term u·v over random user-title pairs")
    genre_std: float = Field(0.5, ge=0, description="std of the genre-affinity term over random pairs")
    w_pop: float = Field(0.35, description="weight of the standardized log base popularity")
    w_language: float = Field(0.3, description="bonus when the title's language is the user's region's")
    novelty_boost: float = Field(1.0, ge=0, description="extra utility of a title on its release day")
    novelty_days: float = Field(21.0, gt=0, description="e-folding time of the novelty boost, days")
    reference_rank: int = Field(30, ge=1, description="a user's reference utility: that of their k-th best title")
    choice_scale: float = Field(1.5, gt=0, description="utility → choice logit multiplier")
    position_decay: float = Field(0.12, ge=0, description="logit lost per slot further down a row")
    continue_bonus: float = Field(0.8, description="logit bonus of a title in the Continue Watching row")
    outside_logit: float = Field(3.7, description="logit of playing nothing from the page")
    second_play: float = Field(0.25, ge=0, le=1, description="chance to pick a second title after the first")
    search_if_none: float = Field(0.3, ge=0, le=1, description="chance of a search play when the page had none")
    search_extra: float = Field(0.05, ge=0, le=1, description="chance of a search play besides page plays")
    complete_mid: float = Field(1.4, description="utility at which completion is a coin flip")
    complete_slope: float = Field(1.2, gt=0, description="slope of completion in utility")
    binge: float = Field(0.6, ge=0, le=1, description="max chance to watch the next episode in the same session")
    max_episodes: int = Field(5, ge=1, description="most episodes of one series in one session")
    rate_complete: float = Field(0.10, ge=0, le=1, description="chance of a rating after completing")
    rate_abandon: float = Field(0.04, ge=0, le=1, description="chance of a rating after abandoning")
    rating_mean: float = Field(3.6, description="mean rating at utility `rating_center`")
    rating_center: float = Field(1.9, description="utility that gets the mean rating")
    rating_scale: float = Field(0.7, ge=0, description="rating points per unit of utility")
    rating_noise: float = Field(0.6, ge=0, description="std of the rating noise before rounding")
    add_to_list: float = Field(0.02, ge=0, le=1, description="chance to add a liked, unplayed impression to the list")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# Arrays saved as truth/NAME.npy, in this order.
ARRAYS: tuple[str, ...] = (
    "user_ids", "item_ids", "user_factors", "title_factors", "user_genre_affinity", "title_genres",
    "popularity", "release_day", "user_language", "title_language", "runtime_min", "episodes", "user_activity",
    "user_reference",
)  # fmt: skip


@dataclass
class Response:
    """How viewers answered slates: one entry per slate."""

    choice: np.ndarray  # slot index in the slate, -1 = nothing played
    item_id: list[str | None]
    utility: np.ndarray  # true utility of the played title (nan when none)
    fraction: np.ndarray  # share of the runtime (a series: of one episode) watched; nan when none
    completed: np.ndarray  # bool
    watched_s: np.ndarray  # seconds watched; nan when none
    rating: np.ndarray  # 1..5, nan when no rating was given


@dataclass
class GroundTruth:
    """The true tastes of a synthetic world's users and the model of how they respond. Arrays are by index."""

    user_ids: np.ndarray  # [U] str, in index order
    item_ids: np.ndarray  # [I] str
    user_factors: np.ndarray  # [U, d] float32
    title_factors: np.ndarray  # [I, d] float32
    user_genre_affinity: np.ndarray  # [U, G] float32 (scaled: the genre term is affinity · title_genres)
    title_genres: np.ndarray  # [I, G] float32, each row sums to 1 over the title's genres
    popularity: np.ndarray  # [I] float64 Zipf base popularity, sums to 1
    release_day: np.ndarray  # [I] int32, days since the world's start (negative: back catalog)
    user_language: np.ndarray  # [U] int8, index into `languages`
    title_language: np.ndarray  # [I] int8
    runtime_min: np.ndarray  # [I] int32 (a series: an episode)
    episodes: np.ndarray  # [I] int32, 0 for movies
    user_activity: np.ndarray  # [U] float64, mean 1
    user_reference: np.ndarray  # [U] float64, the utility level the user compares titles against
    start: date = date(2024, 1, 1)
    params: ResponseParams = field(default_factory=ResponseParams)
    genres: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- utility
    @cached_property
    def user_vectors(self) -> np.ndarray:
        """[U, d + G] latent factors and genre affinities side by side (their dot gives both taste terms)."""
        return np.ascontiguousarray(np.hstack([self.user_factors, self.user_genre_affinity]), dtype=np.float32)

    @cached_property
    def title_vectors(self) -> np.ndarray:
        """[I, d + G] latent factors and genre weights side by side."""
        return np.ascontiguousarray(np.hstack([self.title_factors, self.title_genres]), dtype=np.float32)

    @cached_property
    def pop_z(self) -> np.ndarray:
        """Standardized log base popularity per title."""
        logp = np.log(self.popularity)
        return (logp - logp.mean()) / (logp.std() or 1.0)

    @cached_property
    def _title_static(self) -> np.ndarray:
        return self.params.w_pop * self.pop_z

    def novelty(self, items: np.ndarray, day: np.ndarray | float) -> np.ndarray:
        """The new-release boost of titles at `day` (days since start); 0 before release and long after."""
        age = np.asarray(day, dtype=np.float64) - self.release_day[items]
        boost = self.params.novelty_boost * np.exp(-np.maximum(age, 0.0) / self.params.novelty_days)
        return np.where(age >= 0, boost, 0.0)

    def utility_idx(self, users: np.ndarray, items: np.ndarray, day: np.ndarray | float | None = None) -> np.ndarray:
        """True utility for broadcastable arrays of user and title indices at `day` (None: no novelty)."""
        users, items = np.broadcast_arrays(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64))
        shape = users.shape
        u, i = users.ravel(), items.ravel()
        dots = np.einsum("nd,nd->n", self.user_vectors[u], self.title_vectors[i], dtype=np.float32).astype(np.float64)
        util = dots + self._title_static[i]
        util += self.params.w_language * (self.user_language[u] == self.title_language[i])
        if day is not None:
            util += self.novelty(i, np.broadcast_to(np.asarray(day, dtype=np.float64), shape).ravel())
        return util.reshape(shape)

    def surplus_idx(self, users: np.ndarray, items: np.ndarray, day: np.ndarray | float | None = None) -> np.ndarray:
        """Utility above the user's reference level: what choice, completion and ratings respond to."""
        users = np.asarray(users, dtype=np.int64)
        return self.utility_idx(users, items, day) - self.user_reference[users]

    def reference_levels(self, rank: int | None = None) -> np.ndarray:
        """[U] each user's expected utility of their `rank`-th best title (normal approximation, exact moments)."""
        rank = self.params.reference_rank if rank is None else rank
        n_lang = int(max(self.user_language.max(initial=0), self.title_language.max(initial=0))) + 1
        lang_t = np.eye(n_lang)[self.title_language]
        x = np.hstack([self.title_vectors.astype(np.float64), self._title_static[:, None], lang_t])
        e = np.hstack([
            self.user_vectors.astype(np.float64), np.ones((len(self.user_ids), 1)),
            self.params.w_language * np.eye(n_lang)[self.user_language],
        ])  # fmt: skip
        mean = e @ x.mean(axis=0)
        cov = np.cov(x, rowvar=False, bias=True)
        std = np.sqrt(np.maximum(np.einsum("ud,de,ue->u", e, cov, e), 0.0))
        n = len(self.item_ids)
        return mean + std * float(ndtri(1.0 - min(rank, n / 2) / n))

    def utility(self, user_ids: Sequence[str], item_ids: Sequence[str], at: datetime | None = None) -> np.ndarray:
        """True utility of each (user, title) pair by id, at time `at` (None: without the novelty boost)."""
        return self.utility_idx(self.user_index(user_ids), self.item_index(item_ids), self.day_of(at))

    # ---------------------------------------------------------------- response pieces (vectorized)
    def slate_logits(
        self,
        users: np.ndarray,
        items: np.ndarray,
        day: np.ndarray | float | None,
        bonus: np.ndarray | None = None,
        positions: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Choice logits and surpluses of slates `items` [S, W] (-1 = empty slot) for `users` [S].

        `positions` [S, W] (default: slot j is position j) lowers the logit of lower slots; `bonus` [S, W] is
        added. Returns (logits with -inf on empty slots, surplus utilities with nan there).
        """
        items = np.asarray(items)
        valid = items >= 0
        util = np.full(items.shape, np.nan)
        rows, cols = np.nonzero(valid)
        day_rows = None if day is None else np.broadcast_to(np.asarray(day, dtype=np.float64), (items.shape[0],))[rows]
        util[rows, cols] = self.surplus_idx(np.asarray(users)[rows], items[rows, cols], day_rows)
        p = self.params
        pos = np.arange(items.shape[1])[None, :] if positions is None else positions
        logits = p.choice_scale * util - p.position_decay * pos
        if bonus is not None:
            logits = logits + bonus
        return np.where(valid, logits, -np.inf), util

    def choose(self, logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One discrete choice per slate (Gumbel-max against the outside option): slot index, or -1 for none."""
        if logits.shape[1] == 0:
            return np.full(logits.shape[0], -1, dtype=np.int64)
        noisy = logits + rng.gumbel(size=logits.shape)
        best = np.argmax(noisy, axis=1)
        outside = self.params.outside_logit + rng.gumbel(size=logits.shape[0])
        return np.where(noisy[np.arange(len(best)), best] > outside, best, -1)

    def completion_prob(self, util: np.ndarray) -> np.ndarray:
        """Chance to finish a title (an episode) of surplus `util`."""
        return sigmoid(self.params.complete_slope * (util - self.params.complete_mid))

    def watch(
        self, util: np.ndarray, rng: np.random.Generator, start_fraction: np.ndarray | float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(fraction reached, completed) for plays of surplus `util` resumed at `start_fraction`."""
        util = np.asarray(util, dtype=np.float64)
        completed = rng.random(util.shape) < self.completion_prob(util)
        share = rng.beta(1.0 + 2.0 * sigmoid(util), 2.0)
        start = np.broadcast_to(np.asarray(start_fraction, dtype=np.float64), util.shape)
        partial = np.clip(start + (0.89 - start) * share, np.minimum(start + 0.01, 0.89), 0.89)
        return np.where(completed, 1.0, partial), completed

    def episodes_to_watch(self, util: np.ndarray, remaining: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """How many episodes of a series a viewer starts in one session (>= 1, <= remaining)."""
        p_next = np.clip(self.params.binge * sigmoid(np.asarray(util, dtype=np.float64)), 0.0, 0.99)
        extra = rng.geometric(1.0 - p_next) - 1
        cap = np.minimum(np.maximum(remaining, 1), self.params.max_episodes)
        return np.clip(1 + extra, 1, cap)

    def rating(self, util: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A 1..5 star rating for titles of surplus `util`."""
        p = self.params
        raw = (
            p.rating_mean
            + p.rating_scale * (np.asarray(util) - p.rating_center)
            + rng.normal(0.0, p.rating_noise, np.shape(util))
        )
        return np.clip(np.rint(raw), 1.0, 5.0)

    def respond(
        self,
        user_ids: Sequence[str],
        slates: Sequence[Sequence[str]],
        at: datetime | None = None,
        rng: np.random.Generator | int = 0,
    ) -> Response:
        """How each user answers the slate shown to them (one list of title ids per user, best first).

        The caller decides what may be shown (availability, maturity, already watched); the model only answers.
        Titles unknown to the world are never played. Returns the chosen slot, its true utility, watch fraction,
        whether it was completed, the seconds watched and a rating (when one was given), all drawn from the
        true model.
        """
        rng = rng if isinstance(rng, np.random.Generator) else np.random.Generator(np.random.PCG64(rng))
        users = self.user_index(user_ids)
        width = max((len(s) for s in slates), default=0)
        items = np.full((len(slates), width), -1, dtype=np.int64)
        for row, slate in enumerate(slates):
            items[row, : len(slate)] = self.item_index(slate, missing=-1)
        logits, util = self.slate_logits(users, items, self.day_of(at))
        choice = self.choose(logits, rng)
        played = choice >= 0
        rows = np.arange(len(choice))
        chosen_util = np.where(played, util[rows, np.maximum(choice, 0)] if width else np.nan, np.nan)
        fraction, completed = self.watch(np.nan_to_num(chosen_util), rng)
        completed &= played
        items_played = items[rows, np.maximum(choice, 0)] if width else np.zeros(len(choice), dtype=np.int64)
        watched_s = fraction * self.runtime_min[items_played] * 60.0
        rate_p = np.where(completed, self.params.rate_complete, self.params.rate_abandon)
        rated = played & (rng.random(len(choice)) < rate_p)
        rating = np.where(rated, self.rating(np.nan_to_num(chosen_util), rng), np.nan)
        return Response(
            choice=choice,
            item_id=[str(self.item_ids[i]) if ok else None for i, ok in zip(items_played, played)],
            utility=chosen_util + self.user_reference[users],
            fraction=np.where(played, fraction, np.nan),
            completed=completed,
            watched_s=np.where(played, watched_s, np.nan),
            rating=rating,
        )

    # ---------------------------------------------------------------- ids and time
    def user_index(self, user_ids: Sequence[str], missing: int | None = None) -> np.ndarray:
        """Indices of user ids (NotFound for an unknown id unless `missing` is given)."""
        return _lookup(self.user_ids, user_ids, "user", missing)

    def item_index(self, item_ids: Sequence[str], missing: int | None = None) -> np.ndarray:
        """Indices of title ids (NotFound for an unknown id unless `missing` is given)."""
        return _lookup(self.item_ids, item_ids, "title", missing)

    def day_of(self, at: datetime | None) -> float | None:
        """Days since the world's start (UTC) of a moment; None stays None."""
        if at is None:
            return None
        if at.tzinfo is not None:
            at = at.astimezone(UTC).replace(tzinfo=None)
        return (at - datetime(self.start.year, self.start.month, self.start.day)).total_seconds() / 86_400.0

    # ---------------------------------------------------------------- files
    def save(self, folder: Path | str) -> None:
        """Write the arrays as .npy files and truth.json (params, vocabularies, sha256 of every array)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        checksums = {}
        for name in ARRAYS:
            path = folder / f"{name}.npy"
            np.save(path, getattr(self, name), allow_pickle=False)
            checksums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        meta = {
            "version": TRUTH_VERSION,
            "start": self.start.isoformat(),
            "genres": list(self.genres),
            "languages": list(self.languages),
            "params": self.params.model_dump(mode="json"),
            "checksums": checksums,
            **self.meta,
        }
        (folder / TRUTH_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, source: Dataset | Path | str) -> GroundTruth:
        """Load the truth of a synthetic world from a Dataset, its folder, or its truth/ folder (checksums verified)."""
        folder = Path(source.truth_dir) if hasattr(source, "truth_dir") else Path(source)  # type: ignore[union-attr]
        if not (folder / TRUTH_JSON).is_file() and (folder / "truth" / TRUTH_JSON).is_file():
            folder = folder / "truth"
        if not (folder / TRUTH_JSON).is_file():
            raise NotFound("ground truth", str(folder), f"no {TRUTH_JSON} there (only synthetic worlds have one)")
        meta = json.loads((folder / TRUTH_JSON).read_text())
        arrays = {}
        for name in ARRAYS:
            path = folder / f"{name}.npy"
            if not path.is_file():
                raise NotFound("ground-truth array", str(path))
            expected = meta.get("checksums", {}).get(path.name)
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if expected is not None and expected != actual:
                raise ChecksumError(str(path), expected, actual)
            arrays[name] = np.load(path, allow_pickle=False)
        known = {"version", "start", "genres", "languages", "params", "checksums"}
        return cls(
            **arrays,
            start=date.fromisoformat(meta["start"]),
            params=ResponseParams(**meta["params"]),
            genres=tuple(meta["genres"]),
            languages=tuple(meta["languages"]),
            meta={k: v for k, v in meta.items() if k not in known},
        )


def _lookup(vocab: np.ndarray, ids: Sequence[str], kind: str, missing: int | None) -> np.ndarray:
    """Positions of `ids` in the sorted id array `vocab` (ids are zero-padded, so index order is sorted)."""
    wanted = np.asarray(list(ids), dtype=str)
    if wanted.size == 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(vocab, wanted)
    pos = np.minimum(pos, len(vocab) - 1)
    found = vocab[pos] == wanted
    if not found.all():
        if missing is None:
            raise NotFound(kind, str(wanted[~found][0]), "not part of this synthetic world")
        pos = np.where(found, pos, missing)
    return pos.astype(np.int64)
