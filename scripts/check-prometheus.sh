#!/usr/bin/env bash
# Checks the monitoring artifacts under deploy/:
#   scripts/check-prometheus.sh                validates the Prometheus rules (promtool check rules),
#                                              runs their unit tests (promtool test rules) and checks
#                                              the Grafana dashboard JSON
#   scripts/check-prometheus.sh --metrics URL  fetches a running broker's /metrics and lints it
#                                              (promtool check metrics)
# Exits non-zero on any problem. Needs promtool (Debian package "prometheus", installed by
# scripts/install-deps.sh), python3 and, for --metrics, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 [--metrics URL]" >&2
  exit 2
}

command -v promtool >/dev/null || {
  echo "check-prometheus: promtool not found (apt-get install prometheus, or scripts/install-deps.sh)" >&2
  exit 1
}

if [ $# -gt 0 ]; then
  if [ "$1" != "--metrics" ] || [ $# -ne 2 ]; then usage; fi
  url=$2
  body=$(mktemp)
  trap 'rm -f "$body"' EXIT
  echo "==> promtool check metrics $url"
  if ! curl -fsS --max-time 10 -o "$body" "$url"; then
    echo "check-prometheus: cannot fetch $url" >&2
    exit 1
  fi
  if ! grep -q '^credbroker_' "$body"; then
    echo "check-prometheus: $url serves no credbroker_ samples" >&2
    exit 1
  fi
  # Exits 3 and names each metric on lint problems (missing HELP, counters without _total, ...).
  promtool check metrics <"$body" || {
    rc=$?
    echo "check-prometheus: $url: promtool check metrics found problems (above)" >&2
    exit "$rc"
  }
  echo "check-prometheus: $url OK ($(grep -c '^credbroker_' "$body") credbroker_ samples)"
  exit 0
fi
[ $# -eq 0 ] || usage

rules=(deploy/prometheus/alerts.yaml)
[ -f deploy/prometheus/recording.yaml ] && rules+=(deploy/prometheus/recording.yaml)
tests=deploy/prometheus/alerts_test.yaml
dashboard=deploy/grafana/credbroker-dashboard.json

echo "==> promtool check rules ${rules[*]}"
promtool check rules "${rules[@]}"

echo "==> promtool test rules $tests"
promtool test rules "$tests"

echo "==> $dashboard"
python3 -m json.tool "$dashboard" >/dev/null
python3 - "$dashboard" "${rules[@]}" <<'EOF'
"""Dashboard checks, plus a metric-name check of the rule expressions.

Every panel (except rows) must name a datasource and have targets with an expression; every
expression may only reference metrics that start with credbroker_, or `up` (rules may also use the
credbroker: recording rules they define). Metric names mentioned nowhere in the README's Metrics
section are listed as a note, not an error.
"""
import json
import re
import sys

dashboard_path, rule_paths = sys.argv[1], sys.argv[2:]
errors = []

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "atan2"}


def metric_names(expr):
    """The metric names an expression selects (a small PromQL tokenizer, good enough for checks)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)         # string literals
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"\{[^}]*\}", "", e)                       # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                      # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\boffset\s+-?[0-9a-z]+", "", e)
    e = re.sub(r"\$\{?\w+\}?", "", e)                     # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue                                      # exponent or hex digits of a number
        if e[m.end():].lstrip().startswith("("):
            continue                                      # function or aggregation
        if m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def allowed(name, recording_ok=False):
    return name.startswith("credbroker_") or name == "up" or (
        recording_ok and name.startswith("credbroker:"))


used = set()

# --- dashboard
with open(dashboard_path) as f:
    dash = json.load(f)


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


if not dash.get("panels"):
    errors.append("dashboard: no panels")
ids = set()
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
if variables.get("datasource", {}).get("type") != "datasource" or \
        variables["datasource"].get("query") != "prometheus":
    errors.append("dashboard: needs a Prometheus datasource template variable named 'datasource'")
for name in ("provider", "caller"):
    if name not in variables:
        errors.append(f"dashboard: template variable {name!r} is missing")
for name, v in variables.items():
    if v.get("type") == "query":
        q = v.get("definition") or v.get("query", {}).get("query", "")
        if v.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"dashboard: variable {name!r} does not use ${{datasource}}")
        inner = re.sub(r"^\s*label_values\((.*),\s*\w+\)\s*$", r"\1", q)
        for n in metric_names(inner):
            used.add(n)
            if not allowed(n):
                errors.append(f"dashboard: variable {name!r} uses metric {n!r}")
for p in walk(dash.get("panels", [])):
    title = p.get("title", "<untitled>")
    if p.get("id") in ids:
        errors.append(f"panel {title!r}: duplicate id {p.get('id')}")
    ids.add(p.get("id"))
    if "gridPos" not in p:
        errors.append(f"panel {title!r}: no gridPos")
    if p.get("type") == "row":
        continue
    ds = p.get("datasource") or {}
    if ds.get("uid") != "${datasource}":
        errors.append(f"panel {title!r}: datasource must be ${{datasource}}, got {ds!r}")
    targets = p.get("targets") or []
    if not targets:
        errors.append(f"panel {title!r}: no targets")
    for t in targets:
        expr = t.get("expr", "").strip()
        if not expr:
            errors.append(f"panel {title!r}: target {t.get('refId')} has no expr")
            continue
        if not t.get("refId"):
            errors.append(f"panel {title!r}: a target has no refId")
        names = metric_names(expr)
        if not names:
            errors.append(f"panel {title!r}: {expr!r} selects no metric")
        for n in names:
            used.add(n)
            if not allowed(n):
                errors.append(f"panel {title!r}: {expr!r} uses metric {n!r}, "
                              "only credbroker_* and up are allowed")

# --- rules (promtool has validated the syntax; this catches foreign or misspelt prefixes)
exprs = []
for path in rule_paths:
    text = open(path).read()
    # "expr: |" blocks and one-line "expr: ..." values, without a YAML library.
    for m in re.finditer(r"^(\s*)expr:[ \t]*(\|[-+]?|>[-+]?)?[ \t]*(.*)\n((?:\1\s+.*\n|\s*\n)*)",
                         text, re.M):
        exprs.append((path, (m.group(3) if not m.group(2) else "") + "\n" + m.group(4)))
if not exprs:
    errors.append("rules: no expressions found")
for path, expr in exprs:
    for n in metric_names(expr):
        if not allowed(n, recording_ok=True):
            errors.append(f"{path}: expression uses metric {n!r}: {expr.strip()[:80]!r}")
        elif not n.startswith("credbroker:"):
            used.add(n)

# --- note metric names the README does not document (informational)
try:
    readme = open("README.md").read()
    section = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"credbroker_[a-z0-9_]+", section))
    undocumented = sorted(n for n in used if n != "up"
                          and re.sub(r"_(bucket|count|sum)$", "", n) not in documented)
    if undocumented:
        print("note: not (yet) in README.md ## Metrics: " + ", ".join(undocumented))
except (OSError, IndexError):
    pass

for e in errors:
    print("error: " + e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"dashboard OK: {sum(1 for p in walk(dash['panels']) if p.get('type') != 'row')} panels; "
      f"{len(exprs)} rule expressions use only credbroker_* / up")
EOF
echo "check-prometheus: OK"
