"""Run the contract corpus of tests/test_contracts.py with lakegate and with datacontract-cli.

Usage (scripts/datacontract_oracle.sh sets it up):
    python tests/datacontract_oracle.py DATACONTRACT_BIN WORK_DIR   (pytest does not collect it)

Writes the corpus's ten rows as one parquet file, validates it with `lakegate validate` (Spark,
Deequ) and tests it with datacontract-cli (DuckDB over the same file), then prints each rule's
pass/fail on both sides. datacontract-cli 1.2.8 cannot run two quality rules of one metric on
one property in one run (their check keys collide in one aggregate query), so its side runs in
layers, each holding at most one rule per property and metric. Exits 1 when the two disagree on
a rule that is not among the documented differences (docs/contracts.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_contracts import CORPUS, ORDERS  # noqa: E402

COLUMNS = [
    ("rid", pa.int32()), ("code", pa.string()), ("qty", pa.int64()), ("price", pa.float64()),
    ("status", pa.string()), ("email", pa.string()), ("day", pa.string()),
    ("tenant", pa.string()), ("order_no", pa.int64()),
]  # fmt: skip
# Rules where the tools differ by design, and why (docs/contracts.md, "Against datacontract-cli").
DOCUMENTED = {
    "code_dup_rows2": "duplicateValues: datacontract-cli counts duplicated values, lakegate rows",
}
# lakegate's schema-derived rules -> the datacontract-cli check types that judge the same thing.
SCHEMA_CHECKS = {
    "required": ["field_required"],
    "unique": ["field_unique"],
    "logicalTypeOptions.minLength": ["field_min_length"],
    "logicalTypeOptions.maxLength": ["field_max_length"],
    "logicalTypeOptions.minimum": ["field_minimum", "field_maximum"],
    "logicalTypeOptions.exclusiveMinimum": ["field_minimum", "field_not_equal"],
    "logicalTypeOptions.pattern": ["field_regex"],
}


def write_rows(path: Path) -> None:
    """The corpus's rows as one parquet file, with the test's column types."""
    columns = list(zip(*ORDERS, strict=True))
    arrays = {
        name: pa.array(values, type=t) for (name, t), values in zip(COLUMNS, columns, strict=True)
    }
    pq.write_table(pa.table(arrays), path)


def lakegate_results(table: Path, out: Path) -> dict[str, str]:
    """Each rule's status from `lakegate validate` (rules of several constraints: all must pass)."""
    subprocess.run(
        [sys.executable, "-m", "spark_jobs.cli", "validate", str(CORPUS), "--input", str(table),
         "--output", str(out), "--no-history", "--no-html-report", "--quiet"],
        cwd=ROOT, check=False,
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    results: dict[str, str] = {}
    for c in report["constraints"]:
        meta = c["contract"]
        ref = meta.get("id") or f"{meta['path']} ({c['type']})"
        passed = c["status"] == "success" and results.get(ref, "pass") == "pass"
        results[ref] = "pass" if passed else "fail"
    return results


def layers(contract: dict[str, Any]) -> list[dict[str, Any]]:
    """Copies of the contract, each with at most one quality rule per property and metric."""
    slots: dict[tuple[str, str], int] = defaultdict(int)
    placed: list[tuple[int, list[Any], dict[str, Any]]] = []
    obj = contract["schema"][0]
    for holder in [*obj["properties"], obj]:
        for rule in holder.get("quality", []):
            metric = rule.get("metric") or rule.get("type", "library")
            key = (holder.get("name", ""), metric)
            placed.append((slots[key], holder["quality"], rule))
            slots[key] += 1
    count = max((layer for layer, _, _ in placed), default=0) + 1
    copies = []
    for layer in range(count):
        keep = {id(rule) for n, _, rule in placed if n == layer}
        copy = yaml.safe_load(yaml.safe_dump(contract))
        for original, holder in zip(
            [*obj["properties"], obj],
            [*copy["schema"][0]["properties"], copy["schema"][0]],
            strict=True,
        ):
            if "quality" in original:
                holder["quality"] = [
                    r
                    for r, o in zip(holder["quality"], original["quality"], strict=True)
                    if id(o) in keep
                ]
        copies.append(copy)
    return copies


def datacontract_results(binary: str, table: Path, work: Path) -> dict[str, str]:
    """Each rule's pass/fail from datacontract-cli, schema rules named as lakegate's paths."""
    contract = yaml.safe_load(CORPUS.read_text())
    contract["servers"] = [
        {"server": "local", "type": "local", "path": str(table), "format": "parquet"}
    ]
    names = [p["name"] for p in contract["schema"][0]["properties"]]
    results: dict[str, str] = {}
    for n, copy in enumerate(layers(contract)):
        path, output = work / f"layer{n}.odcs.yaml", work / f"layer{n}.json"
        path.write_text(yaml.safe_dump(copy, sort_keys=False))
        subprocess.run(
            [binary, "test", str(path), "--server", "local", "--output", str(output),
             "--output-format", "json", "--no-inline-references"],
            check=False, capture_output=True,
        )  # fmt: skip
        for check in json.loads(output.read_text())["checks"]:
            verdict = "pass" if check["result"] == "passed" else "fail"
            if check.get("qualityId"):
                results[check["qualityId"]] = verdict
            elif n == 0 and check.get("field") in names:
                index = names.index(check["field"])
                results[f"{check['type']}@{index}"] = verdict
            elif n == 0 and check["type"] == "primary_key_unique":
                results["primary_key_unique"] = verdict
    return results


def schema_verdict(ref: str, theirs: dict[str, str]) -> str | None:
    """datacontract-cli's verdict on one of lakegate's schema-derived rules, None when unchecked."""
    path = ref.split(" (")[0]
    if "properties[" not in path:
        return None
    index = int(path.split("properties[")[1].split("]")[0])
    rule = path.split("]", 2)[-1].lstrip(".")
    if rule == "primaryKey":
        kind = ref.split(" (")[1].rstrip(")")
        found = (
            [theirs.get("primary_key_unique")]
            if kind == "isPrimaryKey"
            else [
                theirs.get(f"field_primary_key_required@{index}")
                or theirs.get(f"field_required@{index}")
            ]
        )
    else:
        found = [theirs.get(f"{t}@{index}") for t in SCHEMA_CHECKS.get(rule, [])]
    if not found or None in found:
        return None
    return "pass" if all(v == "pass" for v in found) else "fail"


def main(binary: str, work: Path) -> int:
    """Compare both tools rule by rule; 1 when they differ where docs/contracts.md says not."""
    work.mkdir(parents=True, exist_ok=True)
    table = work / "orders.parquet"
    write_rows(table)
    ours = lakegate_results(table, work / "lakegate")
    theirs = datacontract_results(binary, table, work)
    same = differs = unchecked = 0
    failed = False
    for ref, verdict in ours.items():
        other = theirs.get(ref) if ref in theirs else schema_verdict(ref, theirs)
        if other is None:
            unchecked += 1
            note = "not checked by datacontract-cli"
        elif other == verdict:
            same += 1
            note = "same"
        else:
            differs += 1
            note = f"DIFFERS: {DOCUMENTED.get(ref, 'undocumented')}"
            failed |= ref not in DOCUMENTED
        print(f"{ref:<60} lakegate {verdict:<5} datacontract-cli {other or '-':<5} {note}")
    print(
        f"{same} same, {differs} different ({len(DOCUMENTED)} documented), {unchecked} not checked"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
