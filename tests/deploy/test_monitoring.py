"""deploy/monitoring: the Prometheus alert rules and the Grafana dashboard. promtool (Debian's
prometheus package, which scripts/test installs) checks the rules and every dashboard query,
and runs the alerts against made-up series; every FUSOU series they name is one FUSOU exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fusou.server.metrics import REGISTRY, TABLES

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "fusou-alerts.yaml"
DASHBOARD = MONITORING / "fusou-grafana-dashboard.json"
# Grafana's variables, as Prometheus would see them once Grafana replaced them.
VARIABLES = {"$__rate_interval": "5m", "$dataset": ".*", "$job": ".*"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        message = "needs promtool: scripts/test installs it (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    for name, value in VARIABLES.items():
        exprs = [e.replace(name, value) for e in exprs]
    return exprs


def exported_series() -> set[str]:
    """The names a scrape of FUSOU can hold."""
    names = set()
    for family in [*REGISTRY.collect(), *TABLES.collect()]:
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def fusou_names(expr: str) -> set[str]:
    return set(re.findall(r"\bfusou_[a-z_]+\b", expr))


def test_the_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_a_broken_rule_fails_the_check(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        RULES.read_text().replace("max(fusou_buffer_oldest", "max(fusou_buffer_oldest(")
    )
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    rules = tmp_path / "queries.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"query:{i}", "expr": e} for i, e in enumerate(queries())
                        ],
                    }
                ]
            }
        )
    )
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_name_only_series_fusou_exports() -> None:
    exported = exported_series()
    rule_exprs = [
        r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
    ]
    named = set().union(*(fusou_names(e) for e in [*rule_exprs, *queries()]))
    assert named, "no FUSOU series named"
    assert named <= exported, sorted(named - exported)
    # The per-table series and the process's own are on the dashboard.
    assert {"fusou_table_rows", "fusou_table_compaction_backlog_files"} <= named
    assert any("process_resident_memory_bytes" in q for q in queries())


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    used = {m for q in json.dumps(board["panels"]) for m in re.findall(r"\$(\w+)", q)}
    assert used - {"__rate_interval"} <= variables


ALERT_TESTS = {
    "rule_files": [str(RULES)],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                # Rows age as archiving stalls: 2 h, then 60 s more per minute.
                {
                    "series": 'fusou_buffer_oldest_row_age_seconds{instance="a"}',
                    "values": "7200+60x120",
                },
                {"series": 'fusou_ready{instance="a"}', "values": "1 1 0x10"},
                {
                    "series": 'fusou_last_successful_run_timestamp_seconds{kind="archive"}',
                    "values": "0x200",
                },
                {
                    "series": 'fusou_last_successful_run_timestamp_seconds{kind="compact"}',
                    "values": "0+60x200",
                },
            ],
            "alert_rule_test": [
                # 3 h reached at minute 60, then 15 minutes pending.
                {"eval_time": "70m", "alertname": "FusouBufferRowsTooOld", "exp_alerts": []},
                {
                    "eval_time": "80m",
                    "alertname": "FusouBufferRowsTooOld",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning"},
                            "exp_annotations": {
                                "summary": "FUSOU's oldest hot row is 3h 20m 0s old",
                                "description": "Archive runs are not moving rows out of PostgreSQL. Check the fusou-archive CronJob's Jobs and the archiver's log; `fusou stats` shows which tables hold them.",
                            },
                        }
                    ],
                },
                {"eval_time": "4m", "alertname": "FusouNotReady", "exp_alerts": []},
                {
                    "eval_time": "8m",
                    "alertname": "FusouNotReady",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "instance": "a"},
                            "exp_annotations": {
                                "summary": "a cannot reach PostgreSQL or the object store",
                                "description": "Its readiness health status is NOT_SERVING, so it takes no traffic; the log names the dependency that does not answer.",
                            },
                        }
                    ],
                },
                # The archive's last success is at time 0: more than 3 h ago from minute 180.
                {"eval_time": "150m", "alertname": "FusouNoSuccessfulArchive", "exp_alerts": []},
                {
                    "eval_time": "195m",
                    "alertname": "FusouNoSuccessfulArchive",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning"},
                            "exp_annotations": {
                                "summary": "No Archive run has succeeded for 3h 15m 0s",
                                "description": "Check the fusou-archive CronJob (suspended? failing?).",
                            },
                        }
                    ],
                },
                # Compaction keeps succeeding.
                {"eval_time": "195m", "alertname": "FusouNoSuccessfulCompaction", "exp_alerts": []},
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                # A process whose first Archive failure comes at minute 200: its series
                # starts at 1, which increase() alone would miss.
                {
                    "series": 'fusou_rpc_requests_total{method="/fusou.archiver.v1.ArchiverService/Archive",code="UNAVAILABLE"}',
                    "values": "_x200 1x200",
                },
                # Reads are not scheduled calls.
                {
                    "series": 'fusou_rpc_requests_total{method="/fusou.reader.v1.ReaderService/ReadRange",code="NOT_FOUND"}',
                    "values": "_x200 1x200",
                },
                # An old failure, with a scrape gap at minutes 170 to 180: not a new failure.
                {
                    "series": 'fusou_rpc_requests_total{method="/fusou.compactor.v1.CompactorService/Compact",code="INTERNAL"}',
                    "values": "1x170 _x10 1x220",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "190m", "alertname": "FusouScheduledCallFailing", "exp_alerts": []},
                *(
                    {
                        "eval_time": at,
                        "alertname": "FusouScheduledCallFailing",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "method": "/fusou.archiver.v1.ArchiverService/Archive",
                                    "code": "UNAVAILABLE",
                                },
                                "exp_annotations": {
                                    "summary": "/fusou.archiver.v1.ArchiverService/Archive failed with UNAVAILABLE",
                                    "description": "A scheduled FUSOU call failed in the last two hours; the Job's log holds the error.",
                                },
                            }
                        ],
                    }
                    for at in ("205m", "300m")
                ),
                # Two hours after it appeared, the failure is old news.
                {"eval_time": "330m", "alertname": "FusouScheduledCallFailing", "exp_alerts": []},
            ],
        },
    ],
}


def test_the_alerts_fire_when_they_should(tmp_path: Path) -> None:
    tests = tmp_path / "alerts_test.yaml"
    tests.write_text(yaml.safe_dump(ALERT_TESTS, sort_keys=False, width=1000))
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
