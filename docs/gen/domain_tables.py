"""Tables generated from the code for the pages: `{{ event_columns }}` (the event schema, from
streamrec.events.schema) and `{{ alert_rules }}` (deploy/prometheus/alerts.yml)."""

from __future__ import annotations


def event_columns() -> str:
    from streamrec.events.schema import EVENT_COLUMNS, SCHEMA_VERSION, TYPE_REQUIRES

    rows = ["| column | type | required | limits | meaning |", "|---|---|---|---|---|"]
    for c in EVENT_COLUMNS:
        limits = []
        if c.max_len:
            limits.append(f"at most {c.max_len} characters")
        if c.min_value is not None or c.max_value is not None:
            limits.append(f"{c.min_value:g} to {c.max_value:g}")
        needed_by = [t for t, fields in TYPE_REQUIRES.items() if c.name in fields]
        required = "yes" if c.required else (f"for {', '.join(f'`{t}`' for t in needed_by)}" if needed_by else "")
        rows.append(f"| `{c.name}` | {c.sql_type} | {required} | {', '.join(limits)} | {c.doc} |")
    return "\n".join(rows) + f"\n\nSchema version {SCHEMA_VERSION}, stored with every row."


def alert_rules() -> str:
    """The Prometheus alert rules of deploy/prometheus/alerts.yml as a table (name, severity, for, summary)."""
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
    rows = ["| alert | group | severity | for | summary |", "|---|---|---|---|---|"]
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            summary = " ".join(rule.get("annotations", {}).get("summary", "").split()).replace("|", "\\|")
            rows.append(f"| `{rule['alert']}` | {group['name']} | {rule.get('labels', {}).get('severity', '')} | "
                        f"{rule.get('for', '')} | `{summary}` |")
    return "\n".join(rows)


PLACEHOLDERS = {"{{ event_columns }}": event_columns, "{{ alert_rules }}": alert_rules}


def expand(markdown: str) -> str:
    for placeholder, render in PLACEHOLDERS.items():
        if placeholder in markdown:
            markdown = markdown.replace(placeholder, render())
    return markdown
