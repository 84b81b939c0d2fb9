"""BENCHMARKS.md section for bench/reliability.py (issue 10): one table first (load held, faults survived, bad inputs
tried, events lost), then what each number is made of.

Found by bench/render.py (it calls `section()` of every bench/render_*.py); reads bench/results/reliability.json.
"""

from __future__ import annotations

from render import load, table, verdict  # bench/ is on sys.path under render.py


def section() -> str:
    r = load("reliability")
    if r is None:
        return ""
    s, soak, kill, fuzz, redis, art, api = (r["summary"], r["soak"], r["kill9"], r["fuzz_files"], r["redis"],
                                             r["artifacts"], r["api_fuzz"])
    lh, faults, bad = s["load_held"], s["faults"], s["bad_inputs"]
    slowest = min(w["rps"] for w in soak["windows"])
    held = lh["met"] and slowest >= 0.95 * lh["target_rps"]  # the rate kept up in every window, not only on average
    total_faults = faults["kill9"] + faults["redis_outages"] + faults["full_disk"] + faults["corrupted_artifacts"]
    writes_5xx = redis.get("posts_5xx", redis["posts"].get("503", 0))
    top = [
        ["load held", f"{lh['target_rps']:,.0f} req/s (70% of max {soak['max']['rps']:,.0f}) for {lh['minutes']:g} "
                      f"min: {soak['requests']:,} requests, {lh['errors']} errors, p50 {lh['p50_ms_median']} ms "
                      f"(median window), p99 ≤ {lh['p99_ms_worst']} ms, slowest window {slowest:,.0f} req/s, RSS "
                      f"{lh['rss_growth']:+.1%}", verdict(held)],
        ["faults survived", f"{faults['survived']} of {total_faults}: kill -9 of ingestion ×{faults['kill9']}, Redis "
                            f"down ×{faults['redis_outages']}, full disk ×{faults['full_disk']}, corrupted model "
                            f"files ×{faults['corrupted_artifacts']} (while Redis was down: event posts "
                            f"{writes_5xx} 5xx, {redis.get('events_held', 0):,} events held in the API's outbox; "
                            f"reads {redis['reads_5xx']} 5xx)",
         verdict(faults["survived"] == total_faults)],
        ["bad inputs tried", f"{bad['api_cases']:,} generated API requests against the live server "
                             f"({bad['api_5xx']} answered 5xx; `make test` sends 1,000+ more in process); "
                             f"{bad['files']:,} malformed event files, {bad['rows']:,} rows, {bad['broken_rows']:,} "
                             f"broken: {bad['quarantined']:,} quarantined with a reason, {bad['files_refused']} "
                             f"files refused whole (a required column missing)",
         verdict(bad["api_5xx"] == 0 and bad["broken_rows"] == bad["quarantined"] and not bad["fuzz_failures"])],
        ["events lost", f"**{s['events_lost']}** (kill -9 runs, malformed files, Redis outages)",
         verdict(s["events_lost"] == 0)],
    ]
    short = [w for w in soak["windows"] if w["rps"] < 0.95 * lh["target_rps"]]
    short_text = (f"{len(short)} of {len(soak['windows'])} windows fell short of the target rate (slowest "
                  f"{slowest:,.0f} req/s; other work on the machine in those windows: up to "
                  f"{max(w['other_cores'] for w in short)} cores, the server "
                  f"{min(w['server_cores'] for w in short)}–{max(w['server_cores'] for w in short)} cores against "
                  f"{soak['windows'][0]['server_cores']} in the first window). "
                  if short else "Every window kept the target rate (within 5%). ")
    windows = [[f"{w['t_s'] / 60:.1f}", f"{w['rps']:,.0f}", w["p50_ms"], w["p99_ms"], w["errors"], w["rss_mib"],
                w["other_cores"]] for w in soak["windows"]]
    disk = [[d["fault"], d["store_before"][0], d["store_after_fault"][0], d["store_after_retry"][0], d["exit_code"],
             f"`{d['error'][:140]}…`"] for d in r["full_disk"]]
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(fuzz["by_reason"].items(), key=lambda kv: -kv[1]))
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(fuzz["by_kind"].items(), key=lambda kv: -kv[1]))
    audit = r["pip_audit"]
    if not audit.get("ran"):
        audit_line = f"pip-audit did not run: {audit.get('why')}"
    else:
        parts = []
        for service, x in audit["services"].items():
            why = x.get("skip_reason_example") or x.get("error") or ""
            parts.append(f"{service}: {x.get('audited', 0)} of {audit['requirements']} audited"
                         + (f", {x['vulnerabilities']} vulnerabilities" if x.get("audited") else f" ({why[:160]})"))
        audit_line = (f"{audit['tool']} over `pip freeze` of the environment ({audit['requirements']} pinned "
                      f"packages): {'; '.join(parts)}. "
                      + ("**It could not audit anything here**: the machine reaches a package index but not PyPI's "
                         "JSON/advisory API nor api.osv.dev; run bench/reliability.py where they are reachable."
                         if not audit["audited_any"] else ""))
    return "\n".join([
        "## Reliability: bad input, faults, load and soak (issue 10)",
        "",
        f"`{r['command'].strip()}` — {r['machine']['cores']} cores, world \"{r['world']['size']}\" "
        f"({r['world']['events']:,} events, {r['world']['users']:,} users, {r['world']['titles']:,} titles), "
        f"{r['seconds'] / 60:.0f} min in all. The fast part of the same suite runs in `make test` "
        "(tests/e2e/test_reliability_*.py, tests/unit/test_reliability_ingest.py, tests/unit/test_no_unpickling.py, "
        "tests/e2e/test_crash_ingest.py).",
        "",
        table(["", "measured", "verdict"], top),
        "",
        f"**Load and soak.** `streamrec serve --workers {soak['workers']}` (the serving benchmark's world and "
        f"settings), wrk with bench/serving.lua over a mix of paths (lists : homepages : similar titles = "
        f"{' : '.join(str(w) for w in soak['mix'].values())}, 1,500 users). Maximum throughput of the mix: "
        f"{soak['max']['rps']:,.0f} req/s (best of 8 and 32 connections, 10 s each); then "
        f"{soak['target_rps']:,.0f} req/s on a fixed schedule, {soak['connections']} connections, in "
        f"{soak['window_s']} s windows. Errors are wrk's (connect, read, write, timeout, non-2xx status). RSS: the "
        f"server's process tree, {soak['rss_mib_first_window']} MiB after the first window, "
        f"{soak['rss_mib_last_window']} MiB after the last (target growth < 10%). Other work on the shared machine "
        f"used {soak['other_cores_mean']} cores on average during the soak. " + short_text + "Plot: "
        "[bench/results/reliability_soak.png](bench/results/reliability_soak.png). An earlier soak found every pool "
        "warmed at load expiring together one TTL (`serving.ranked_ttl_s`, 300 s) later — a window of second-long "
        "p99 as every request fell on the refresh path at once; the warm-up now ages each pool by up to half the TTL, "
        "so they expire over its second half (tests/e2e/test_reliability_api.py).",
        "",
        table(["minute", "req/s", "p50 ms", "p99 ms", "errors", "RSS MiB", "other cores"], windows),
        "",
        f"**kill -9 of ingestion.** {kill['kills']} runs of `streamrec ingest` (5 CSV files, {kill['valid_events']:,} "
        f"distinct valid events, {kill['invalid_rows']:,} invalid rows, ids repeated across files) killed with "
        f"SIGKILL at random moments within one run's {kill['full_run_s']} s; after every kill the store held whole "
        f"batches only ({kill['stores_with_some_batches']} kills left some but not all batches stored); one "
        f"uninterrupted run then stored {kill['stored']:,} events (lost {kill['lost']}, twice {kill['stored_twice']}) "
        f"and quarantined {kill['quarantined']:,}.",
        "",
        f"**Redis stopped and restarted** under `streamrec serve` (Redis Streams bus, Redis online store) and a "
        f"`streamrec worker`: {len(redis['outages'])} outages ("
        + ", ".join(f"{o['how']} {o['down_s']} s" for o in redis["outages"])
        + f") while 3 readers fetched lists and a producer posted batches of 20 events. Reads: "
        f"{sum(redis['reads'].values()):,}, by status {redis['reads']}, 5xx or failed {redis['reads_5xx']} (fallbacks "
        f"{redis['read_fallbacks']}). Posts: by status {redis['posts']}, 5xx or failed {writes_5xx}: while Redis was "
        f"down POST /v1/events answered 202 and kept {redis.get('events_held', 0):,} events in its outbox on disk "
        "(`serving.hold_events`), published once Redis was back. Events posted "
        f"{redis['events_posted']:,}; counted as applied by the worker (`streamrec_worker_events_total"
        f"{{outcome=\"applied\"}}`, read until the lag was 0 or 120 s passed) {redis['events_applied_by_worker']:,.0f}"
        + (f", as duplicates {redis['events_counted_duplicate_by_worker']:,.0f}"
           if redis.get("events_counted_duplicate_by_worker") is not None else "")
        + (" — short of the posted count: a batch the worker applied just before Redis was killed, whose reply was "
           "lost, is counted a duplicate when it is delivered again"
           + ("" if redis.get("events_counted_duplicate_by_worker") is not None else " (not verified in this run)")
           if (redis["events_applied_by_worker"] or 0) < redis["events_posted"] else "")
        + f"; stored by `streamrec ingest` of the worker's landed parts {redis['events_stored_distinct']:,} (lost "
        f"{redis['events_lost']}). redis-server {redis['redis_version']}.",
        "",
        "**Full disk under the event store.** `streamrec ingest` of a 150,000-row file into a store on a 24 MiB tmpfs "
        "filled but for 256 KiB, and under a file-size limit (RLIMIT_FSIZE) just over the store's size; then again "
        "with room:",
        "",
        table(["fault", "events before", "after the failed batch", "after the retry", "exit", "the error"], disk),
        "",
        f"**Corrupted model artifacts.** Each of the {art['model_folder_files']} files of a saved pipeline bundle "
        f"flipped at one byte, and truncated, and offered to the live server (`POST /v1/admin/reload`): "
        f"{art['refused']} of {art['tried']} refused (422), the served version ({art['served_version']}) kept "
        f"{art['old_model_kept']} times.",
        "",
        f"**Generated API requests.** schemathesis {api.get('examples_per_operation_and_mode')} examples per "
        f"operation and mode (valid and invalid input, with the API key) against the live server: {api['cases']:,} "
        f"requests, by status {api['by_status']}, server errors {len(api['server_errors'])}.",
        "",
        f"**Malformed event files.** {fuzz['examples']} hypothesis examples ({fuzz['files']:,} files: "
        f"{', '.join(f'{k} {v}' for k, v in fuzz['by_format'].items())}), each 1–3 files into a fresh store, rows by "
        f"kind: {kinds}. Quarantine reasons: {reasons}. Every valid event_id stored exactly once "
        f"({fuzz['valid_lost']} lost, {fuzz['stored_twice']} twice), {len(fuzz['failures'])} failed examples.",
        "",
        f"**pip-audit.** {audit_line}",
        "",
    ])
