"""k-core filtering of interactions: drop sparse users and titles, round by round in SQL, until stable.

Each round counts the rows (interactions) of every user and title in what is left, then removes, at once,
every user with fewer than `min_user` rows and every title with fewer than `min_item` rows. Rounds repeat
until one removes nothing. The result is the largest subset of rows in which every user has >= `min_user`
and every title >= `min_item` rows (the (min_user, min_item)-core, unique, so the result is deterministic).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import duckdb

from streamrec.preprocess._sql import create_table, drop_temp, output_name, relation, require_columns


@dataclass(frozen=True)
class KCoreRound:
    """What one round removed."""

    round: int
    users_removed: int
    items_removed: int
    rows_removed: int


@dataclass(frozen=True)
class KCoreResult:
    """The filtered table, the counts before and after, and what each round removed."""

    table: str
    rows_before: int
    rows_after: int
    users_before: int
    users_after: int
    items_before: int
    items_after: int
    rounds: list[KCoreRound] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _counts(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int, int]:
    rows, users, items = con.execute(
        f"SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id) FROM {table}"
    ).fetchone()  # type: ignore[misc]
    return int(rows), int(users), int(items)


def kcore_filter(
    con: duckdb.DuckDBPyConnection,
    source: str,
    min_user: int,
    min_item: int,
    *,
    output: str = "interactions_core",
    temporary: bool = False,
    max_rounds: int = 10_000,
) -> KCoreResult:
    """Create `output`: the rows of `source` (one per user_id, item_id) that form its k-core.

    Args:
        con: the database holding `source`.
        source: a table or view with at least user_id and item_id; all its columns are kept.
        min_user: every user keeps at least this many rows (>= 1).
        min_item: every title keeps at least this many rows (>= 1).
        output: the table to create (replaced if it exists), ordered by user_id, item_id.
        temporary: create a temporary table instead of a persistent one.
        max_rounds: safety limit (a core is always reached in fewer rounds than there are rows).

    Returns:
        Counts before/after and the rounds that removed something.
    """
    if min_user < 1 or min_item < 1:
        raise ValueError(f"min_user and min_item must be >= 1, got {min_user}, {min_item}")
    src = relation(source)
    output_name(output)
    require_columns(con, src, ("user_id", "item_id"))
    work, bad_users, bad_items = "_pp_kcore", "_pp_kcore_users", "_pp_kcore_items"
    rows_before, users_before, items_before = _counts(con, src)
    rounds: list[KCoreRound] = []
    current, rows_now = src, rows_before  # the source is copied only once a round removes something
    for number in range(1, max_rounds + 1):
        for table, key, least in ((bad_users, "user_id", min_user), (bad_items, "item_id", min_item)):
            drop_temp(con, table)
            con.execute(
                f"CREATE TEMP TABLE {table} AS SELECT {key} FROM {current} GROUP BY {key} HAVING count(*) < {int(least)}"
            )
        n_users, n_items = con.execute(
            f"SELECT (SELECT count(*) FROM {bad_users}), (SELECT count(*) FROM {bad_items})"
        ).fetchone()  # type: ignore[misc]
        if not n_users and not n_items:
            break
        if current == src:
            drop_temp(con, work)
            con.execute(
                f"CREATE TEMP TABLE {work} AS SELECT * FROM {src} "
                f"ANTI JOIN {bad_users} USING (user_id) ANTI JOIN {bad_items} USING (item_id)"
            )
            current = work
        else:
            con.execute(
                f"DELETE FROM {work} WHERE user_id IN (SELECT user_id FROM {bad_users}) "
                f"OR item_id IN (SELECT item_id FROM {bad_items})"
            )
        (rows_left,) = con.execute(f"SELECT count(*) FROM {work}").fetchone()  # type: ignore[misc]
        rounds.append(KCoreRound(number, int(n_users), int(n_items), rows_now - int(rows_left)))
        rows_now = int(rows_left)
    else:
        raise RuntimeError(f"k-core of {source} did not converge in {max_rounds} rounds")
    drop_temp(con, bad_users)
    drop_temp(con, bad_items)
    create_table(con, output, f"SELECT * FROM {current} ORDER BY user_id, item_id", temporary=temporary)
    drop_temp(con, work)
    if rounds:
        rows_after, users_after, items_after = _counts(con, output)
    else:
        rows_after, users_after, items_after = rows_before, users_before, items_before
    return KCoreResult(
        table=output,
        rows_before=rows_before,
        rows_after=rows_after,
        users_before=users_before,
        users_after=users_after,
        items_before=items_before,
        items_after=items_after,
        rounds=rounds,
    )
