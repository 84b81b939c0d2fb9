"""MovieLens loaders: tiny fixture files in every release's own format, from folders and zips."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest
import structlog
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.data.dataset import Dataset
from streamrec.data.movielens import VARIANTS, detect_variant, movielens_to_dataset, read_movielens
from streamrec.errors import DataError, NotFound

T0 = 978_300_760  # 2001-01-01 22:12:40 UTC


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None)


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode(encoding))


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def make_100k(folder: Path) -> Path:
    write(folder, "u.data", f"1\t1\t5\t{T0 + 10}\n2\t1\t3\t{T0}\n1\t2\t4\t{T0 + 5}\n2\t3\t1\t{T0 + 20}\n")
    write(
        folder,
        "u.item",
        f"1|Toy Story (1995)|01-Jan-1995||http://imdb/1|{flags(3, 4, 5)}\n"
        f"2|Cité des enfants perdus, La (1995)|15-Dec-1995||http://imdb/2|{flags(16)}\n"
        f"3|unknown||||{flags(0)}\n",
        encoding="latin-1",
    )
    write(folder, "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary"]
    genres += ["Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller"]
    genres += ["War", "Western"]
    write(folder, "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    return folder


def make_1m(folder: Path) -> Path:
    write(folder, "ratings.dat", f"1::1193::5::{T0}\n1::661::3::{T0 + 100}\n2::1193::4::{T0 + 50}\n")
    write(
        folder,
        "movies.dat",
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "2000::Château de ma mère, Le (1990)::Comedy\n",
        encoding="latin-1",
    )
    write(folder, "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    return folder


def make_10m(folder: Path) -> Path:
    write(folder, "ratings.dat", f"1::122::5::{T0}\n1::260::3.5::{T0 + 7}\n2::122::0.5::{T0 + 3}\n")
    write(
        folder,
        "movies.dat",
        "122::Boomerang (1992)::Comedy|Romance\n"
        "260::Star Wars: Episode IV - A New Hope (a.k.a. Star Wars) (1977)::Action|Adventure|Sci-Fi\n"
        "300::Untitled::(no genres listed)\n",
    )
    write(folder, "tags.dat", f"1::260::classic: space opera::{T0 + 9}\n2::122::funny::{T0 + 4}\n")
    return folder


MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children\n"
    '2,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Adventure|Drama|Fantasy\n'
    "3,Babylon 5,Sci-Fi\n"
    "4,Some Film (2015),(no genres listed)\n"
    '5,"Quoted ""Title"" (1994-1998)",Drama\n'
)


def make_csv(folder: Path, readme: str | None = None) -> Path:
    write(
        folder,
        "ratings.csv",
        f"userId,movieId,rating,timestamp\n1,1,4.0,{T0 + 2}\n1,2,3.5,{T0}\n2,3,5.0,{T0 + 1}\n2,4,0.5,{T0 + 9}\n"
        f"3,5,2.0,{T0 + 4}\n",
    )
    write(folder, "movies.csv", MOVIES_CSV)
    write(folder, "tags.csv", f'userId,movieId,tag,timestamp\n1,2,"dark, weird",{T0 + 5}\n2,3,space,{T0 + 6}\n')
    write(folder, "links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n2,0112682,\n")
    if readme is not None:
        write(folder, "README.txt", readme)
    return folder


def zip_folder(folder: Path, zip_path: Path, top: str) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr(f"{top}/", "")
        for file in sorted(folder.iterdir()):
            zf.write(file, f"{top}/{file.name}")
    return zip_path


def column(table, name):
    return table.column(name).to_pylist()


def by_item(titles):
    return {row["item_id"]: row for row in titles.to_pylist()}


# --- detection ---------------------------------------------------------------------------------------------------


def test_detects_every_format_from_folders(tmp_path: Path) -> None:
    assert detect_variant(make_100k(tmp_path / "a")) == "ml-100k"
    assert detect_variant(make_1m(tmp_path / "b")) == "ml-1m"
    assert detect_variant(make_10m(tmp_path / "c")) == "ml-10m"
    assert detect_variant(make_csv(tmp_path / "ml-25m")) == "ml-25m"
    assert detect_variant(make_csv(tmp_path / "x", readme="This dataset (ml-latest-small) describes")) == (
        "ml-latest-small"
    )
    assert detect_variant(make_csv(tmp_path / "mystery")) == "ml-latest"  # CSV layout, no name anywhere


def test_detects_from_zips_with_a_top_folder(tmp_path: Path) -> None:
    ten = zip_folder(make_10m(tmp_path / "src10"), tmp_path / "ml-10m.zip", "ml-10M100K")
    assert detect_variant(ten) == "ml-10m"
    small = zip_folder(make_csv(tmp_path / "srcs"), tmp_path / "download.zip", "ml-latest-small")
    assert detect_variant(small) == "ml-latest-small"
    assert detect_variant(zip_folder(make_csv(tmp_path / "s32"), tmp_path / "ml-32m.zip", "ml-32m")) == "ml-32m"


def test_parent_folder_of_a_release_is_accepted(tmp_path: Path) -> None:
    make_1m(tmp_path / "downloads" / "ml-1m")
    assert detect_variant(tmp_path / "downloads") == "ml-1m"


def test_unknown_folder_and_missing_path_are_clear_errors(tmp_path: Path) -> None:
    write(tmp_path / "empty", "notes.txt", "hi")
    with pytest.raises(DataError, match=r"no MovieLens ratings file.*notes.txt"):
        detect_variant(tmp_path / "empty")
    with pytest.raises(NotFound, match="nowhere"):
        detect_variant(tmp_path / "nowhere")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .zip"):
        detect_variant(tmp_path / "broken.zip")


def test_explicit_variant_must_match_the_files(tmp_path: Path) -> None:
    folder = make_csv(tmp_path / "data")
    assert read_movielens(folder, variant="ml-20m").variant == "ml-20m"
    with pytest.raises(DataError, match=r"variant 'ml-100k' needs u.data"):
        read_movielens(folder, variant="ml-100k")
    with pytest.raises(DataError, match=r"unknown MovieLens variant 'ml-7m'"):
        read_movielens(folder, variant="ml-7m")


# --- each format ---------------------------------------------------------------------------------------------


def test_ml_100k(tmp_path: Path) -> None:
    tables = read_movielens(make_100k(tmp_path / "ml-100k"))
    assert tables.variant == "ml-100k"
    events = tables.events
    assert events.num_rows == 4
    assert column(events, "ts") == sorted(column(events, "ts"))
    assert column(events, "event_id")[0] == f"ml:2:1:{T0}"
    assert column(events, "ts")[0] == utc(T0)
    assert set(column(events, "type")) == {"rating"}
    assert column(events, "rating") == [3.0, 4.0, 5.0, 1.0]
    titles = by_item(tables.titles)
    assert titles["1"]["title"] == "Toy Story"
    assert titles["1"]["genres"] == ["Animation", "Children's", "Comedy"]
    assert titles["1"]["release_date"] == date(1995, 1, 1)
    assert titles["2"]["title"] == "Cité des enfants perdus, La"  # latin-1 decoded
    assert titles["2"]["release_date"] == date(1995, 12, 15)  # u.item's release date, not January 1
    assert titles["3"]["title"] == "unknown" and titles["3"]["genres"] == [] and titles["3"]["release_date"] is None
    assert {t["kind"] for t in titles.values()} == {"movie"}
    users = {u["user_id"]: u for u in tables.users.to_pylist()}
    assert set(users) == {"1", "2", "3"}  # user 3 is listed in u.user but never rated
    assert users["1"]["signup_ts"] == utc(T0 + 5) and users["1"]["region"] == "unknown"
    assert users["3"]["signup_ts"] is None
    assert tables.tags.num_rows == 0


def test_ml_1m_latin1_dat_files(tmp_path: Path) -> None:
    tables = read_movielens(make_1m(tmp_path / "ml-1m"))
    assert tables.variant == "ml-1m"
    assert column(tables.events, "event_id") == [f"ml:1:1193:{T0}", f"ml:2:1193:{T0 + 50}", f"ml:1:661:{T0 + 100}"]
    assert column(tables.events, "user_id") == ["1", "2", "1"]
    titles = by_item(tables.titles)
    assert titles["2000"]["title"] == "Château de ma mère, Le"
    assert titles["661"]["genres"] == ["Animation", "Children's", "Musical"]
    assert titles["1193"]["release_date"] == date(1975, 1, 1)
    assert sorted(column(tables.users, "user_id")) == ["1", "2"]


def test_ml_10m_colons_in_titles_and_tags(tmp_path: Path) -> None:
    tables = read_movielens(make_10m(tmp_path / "ml-10M100K"))
    assert tables.variant == "ml-10m"
    titles = by_item(tables.titles)
    assert titles["260"]["title"] == "Star Wars: Episode IV - A New Hope (a.k.a. Star Wars)"
    assert titles["260"]["genres"] == ["Action", "Adventure", "Sci-Fi"]
    assert titles["300"] == {**titles["300"], "title": "Untitled", "genres": [], "release_date": None}
    assert column(tables.events, "rating") == [5.0, 0.5, 3.5]
    tags = tables.tags.to_pylist()
    assert [(t["user_id"], t["item_id"], t["tag"], t["ts"]) for t in tags] == [
        ("2", "122", "funny", utc(T0 + 4)),
        ("1", "260", "classic: space opera", utc(T0 + 9)),
    ]
    assert sorted(column(tables.users, "user_id")) == ["1", "2"]  # no users file: derived from ratings


def test_csv_releases(tmp_path: Path) -> None:
    tables = read_movielens(make_csv(tmp_path / "ml-latest-small"))
    assert tables.variant == "ml-latest-small"
    titles = by_item(tables.titles)
    assert titles["2"]["title"] == "City of Lost Children, The (Cité des enfants perdus, La)"
    assert titles["2"]["release_date"] == date(1995, 1, 1)
    assert titles["3"]["title"] == "Babylon 5" and titles["3"]["release_date"] is None
    assert titles["4"]["genres"] == [] and titles["4"]["release_date"] == date(2015, 1, 1)
    assert titles["5"]["title"] == 'Quoted "Title"' and titles["5"]["release_date"] == date(1994, 1, 1)
    assert titles["1"]["genres"] == ["Adventure", "Animation", "Children"]
    events = tables.events
    assert column(events, "item_id") == ["2", "3", "1", "5", "4"]  # time order
    assert column(events, "rating") == [3.5, 5.0, 4.0, 2.0, 0.5]
    assert len(set(column(events, "event_id"))) == events.num_rows
    assert [t["tag"] for t in tables.tags.to_pylist()] == ["dark, weird", "space"]
    assert tables.links is not None and column(tables.links, "imdb_id") == ["0114709", "0112682"]
    users = {u["user_id"]: u["signup_ts"] for u in tables.users.to_pylist()}
    assert users == {"1": utc(T0), "2": utc(T0 + 1), "3": utc(T0 + 4)}


def test_zip_reads_the_same_as_the_folder(tmp_path: Path) -> None:
    folder = make_1m(tmp_path / "ml-1m")
    archive = zip_folder(folder, tmp_path / "ml-1m.zip", "ml-1m")
    from_folder, from_zip = read_movielens(folder), read_movielens(archive)
    assert from_zip.variant == "ml-1m"
    for name in ("titles", "users", "tags", "events"):
        assert getattr(from_zip, name).equals(getattr(from_folder, name)), name


def test_titles_missing_from_the_movie_list_are_added(tmp_path: Path) -> None:
    folder = make_csv(tmp_path / "ml-latest")
    write(folder, "ratings.csv", f"userId,movieId,rating,timestamp\n1,1,4.0,{T0}\n1,99,3.0,{T0 + 1}\n")
    tables = read_movielens(folder)
    assert tables.unlisted_titles == 1
    assert by_item(tables.titles)["99"]["title"] is None
    assert tables.titles.num_rows == 6


# --- malformed files -------------------------------------------------------------------------------------------


def test_misnamed_ratings_column_names_the_file_and_columns(tmp_path: Path) -> None:
    folder = make_csv(tmp_path / "ml-latest")
    write(folder, "ratings.csv", f"user,movieId,rating,timestamp\n1,1,4.0,{T0}\n")
    with pytest.raises(DataError, match=r"ratings\.csv: missing column\(s\) \['userId'\]; columns found: \['user'"):
        read_movielens(folder)


def test_malformed_dat_line_names_the_line(tmp_path: Path) -> None:
    folder = make_10m(tmp_path / "ml-10m")
    write(folder, "movies.dat", "122::Boomerang (1992)::Comedy\n300;Untitled;Drama\n")
    with pytest.raises(DataError, match=r"movies\.dat: line 2: not in the expected format"):
        read_movielens(folder)


def test_bad_rating_value_is_a_data_error(tmp_path: Path) -> None:
    folder = make_csv(tmp_path / "ml-latest")
    write(folder, "ratings.csv", f"userId,movieId,rating,timestamp\n1,1,four,{T0}\n")
    with pytest.raises(DataError, match=r"ratings\.csv: cannot be read"):
        read_movielens(folder)


def test_missing_movie_list_is_named(tmp_path: Path) -> None:
    folder = make_1m(tmp_path / "ml-1m")
    (folder / "movies.dat").unlink()
    with pytest.raises(DataError, match=r"missing file\(s\) \['movies.dat'\]"):
        read_movielens(folder)


# --- data set folder -----------------------------------------------------------------------------------------


def test_movielens_to_dataset_writes_a_complete_folder(tmp_path: Path) -> None:
    archive = zip_folder(make_csv(tmp_path / "src"), tmp_path / "ml-latest-small.zip", "ml-latest-small")
    calls: list[tuple[int, int]] = []
    info = movielens_to_dataset(archive, tmp_path / "out", on_progress=lambda d, t: calls.append((d, t)))
    assert info.source == "movielens:ml-latest-small"
    assert info.counts == {"titles": 5, "availability": 0, "users": 3, "tags": 2, "events": 5}
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)
    data = Dataset.open(tmp_path / "out")
    assert data.info.source == "movielens:ml-latest-small"
    events = data.events()
    assert events.num_rows == 5
    assert pc.all(pc.greater_equal(events["ts"].slice(1), events["ts"].slice(0, 4))).as_py()
    assert data.table("availability").num_rows == 0
    assert data.table("titles").num_rows == 5 and data.table("tags").num_rows == 2
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    folder = make_100k(tmp_path / "ml-100k")
    movielens_to_dataset(folder, tmp_path / "out")
    with pytest.raises(DataError, match="already exists"):
        movielens_to_dataset(folder, tmp_path / "out")
    assert movielens_to_dataset(folder, tmp_path / "out", overwrite=True).counts["events"] == 4


def test_variants_constant_lists_every_release() -> None:
    assert set(VARIANTS) == {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest", "ml-latest-small"}


# --- CLI -------------------------------------------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CliRunner in an empty folder. The root callback configures structlog to print to the runner's stderr,
    which is closed after each invoke, so the previous logging set-up is restored afterwards."""
    monkeypatch.chdir(tmp_path)
    saved = structlog.get_config()
    yield CliRunner()
    structlog.configure(**saved)


def test_cli_load_movielens(tmp_path: Path, runner: CliRunner) -> None:
    folder = make_1m(tmp_path / "ml-1m")
    result = runner.invoke(app, ["data", "load", "movielens", str(folder), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "movielens:ml-1m" in result.output and "events" in result.output
    assert Dataset.open(tmp_path / "ds").info.counts["events"] == 3
    again = runner.invoke(app, ["data", "load", "movielens", str(folder), "--out", str(tmp_path / "ds")])
    assert isinstance(again.exception, DataError)
    wrong = runner.invoke(
        app, ["data", "load", "movielens", str(folder), "--variant", "ml-25m", "--out", str(tmp_path / "d2")]
    )
    assert isinstance(wrong.exception, DataError) and "ml-25m" in str(wrong.exception)


def test_cli_help_texts(runner: CliRunner) -> None:
    for args in (["data", "load", "movielens"], ["data", "load", "file"], ["data", "download"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert ("--dest" if args[1] == "download" else "--out") in result.output
