"""BENCHMARKS.md section for bench/serving.py (issue 5): the serving API under wrk — /healthz, one ranked list and a
homepage on the same server, the p99 at 70% of the maximum throughput, and where a request's time goes (py-spy).

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/serving.json.
"""

from __future__ import annotations

from render import load, table, verdict  # bench/ is on sys.path under render.py

NAMES = {"healthz": "`/healthz`", "recommendations": "`/v1/users/{id}/recommendations?k=20`",
         "home": "`/v1/users/{id}/home`"}


def section() -> str:
    r = load("serving")
    if r is None:
        return ""
    w, s, load_ = r["world"], r["server"], r["load"]
    rows = [[NAMES[x["endpoint"]], f"fixed {x['target_rps']:g}/s (70% of max)" if x["mode"] == "70%" else x["mode"],
             x["connections"], f"{x['rps']:,.0f}", f"{x['p50_ms']:.1f}", f"{x['p90_ms']:.1f}", f"{x['p99_ms']:.1f}",
             f"{x['server_cpu_ms_per_request']:.2f}", f"{x['server_cores']:.2f}", f"{x['other_cores']:.2f}"]
            for x in r["runs"]]
    at70 = r["at_70"]["recommendations"]
    fixed = next(x for x in r["runs"] if x["endpoint"] == "recommendations" and x["mode"] != "max")
    best = max((x for x in r["runs"] if x["endpoint"] == "recommendations" and x["mode"] == "max"),
               key=lambda x: x["rps"])
    at70 = {**at70, "cpu": fixed["server_cpu_ms_per_request"]}
    at70_cores, max_cores, max_cpu = fixed["server_cores"], best["server_cores"], best["server_cpu_ms_per_request"]
    p = r["profile"]
    stages = table(["where (deepest matching frame)", "share of busy samples"],
                   [[x["name"], f"{x['share']:.1%}"] for x in p["stages"]])
    own = ", ".join(f"{x['name']} {x['share']:.1%}" for x in p["top_own"][:8])
    return "\n".join([
        "## Serving API under load (issue 5)",
        "",
        f"`{r['command'].strip()}` — {r['machine']['cores']} cores shared by the server, wrk and whatever else ran "
        f"(the last columns: cores the server used, and cores other processes used during the run). World "
        f"\"{w['size']}\" (seed {w['seed']}: {w['events']:,} events, {w['users']:,} users, {w['titles']:,} titles), "
        f"built by `streamrec demo --no-serve`; `{s['command']}` with **{s['workers']} workers**, serving model "
        f"version {s['model_version']} ({s['model_kind']}: candidates, filters, LightGBM ranker, MMR). "
        + (f"Server settings: {s['settings']}. Requests read each user's ranked pool (DESIGN.md \"The serving path\": "
           "the refresh path ranks and keeps it, the request path applies exclusions, hidden titles, diversity and k); "
           "the rows marked \"refresh path on every request\" are a second server with pools off, so every request "
           "runs candidates, filters, features and the ranker. " if "settings" in s else "") +
        f"{load_['tool']} on loopback, 1 thread, {load_['seconds']} s per run (fixed-rate runs twice that), requests "
        f"spread over {load_['users']:,} users by bench/serving.lua; fixed rate: {load_['fixed_rate']} (wrk2 is "
        "not packaged in Debian).",
        "",
        table(["endpoint", "load", "connections", "requests/s", "p50 ms", "p90 ms", "p99 ms", "server CPU ms/request",
               "server cores", "other cores"], rows),
        "",
        f"Recommendations vs /healthz throughput: **{r['ratio']:.1%}** ({r['max_rps']['recommendations']:,.0f} vs "
        f"{r['max_rps']['healthz']:,.0f} requests/s; target ≥ {r['ratio_target']:.0%}: {verdict(r['ratio_met'])}). "
        f"p99 at 70% of the maximum ({at70['rps']:,.0f} requests/s): **{at70['p99_ms']:.1f} ms** (target ≤ "
        f"{r['p99_target_ms']:g} ms: {verdict(r['p99_met'])}).",
        "",
        f"At the fixed rate the server used {at70_cores:.2f} cores against {max_cores:.2f} at the maximum: a "
        f"request costs more CPU when fewer arrive together ({at70['cpu']:.2f} vs {max_cpu:.2f} ms), so 70% of the "
        "maximum requests/s is more than 70% of the CPU, and the queue that forms makes the p99.",
        "",
        f"Where the time goes: {p['tool']}, every worker process, {p['seconds']} s of "
        f"recommendations at a fixed {p['target_rps']:g}/s ({p['samples']:,} busy samples; the profiler's own CPU "
        f"slows the server, so that run's {p['rps']:,.0f} requests/s and p99 are not measurements):",
        "",
        stages,
        "",
        f"Most own time: {own}.",
        "",
    ])
