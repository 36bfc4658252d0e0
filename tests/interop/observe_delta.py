"""What engines this project does not contain see in the lake's Delta tables.

Usage: observe_delta.py LAKE_ROOT TABLES_JSON

TABLES_JSON lists the tables to open, as {"tables": ["bronze/orders", ...],
"gold_date": "YYYY-MM-DD", "old": {"table": "...", "version": 0}}. Prints one
JSON object: for each engine (delta-rs' Python package `deltalake`, DuckDB
with its delta extension), each table's rows per run_date, and the headline
gold figures; plus deltalake's view of version 0 of the "old" table and of
each table's history. The Rust test compares these with the project's own
figures; this script only observes.
"""

import glob
import json
import os
import struct
import sys

import duckdb
from deltalake import DeltaTable, QueryBuilder


def duckdb_connection():
    import duckdb_ext

    # A namespace package: its folder is its __path__, not __file__'s.
    pattern = os.path.join(
        list(duckdb_ext.__path__)[0], "extensions", "*", "*", "delta.duckdb_extension"
    )
    found = glob.glob(pattern)
    if not found:
        raise SystemExit(f"no delta.duckdb_extension under {pattern}")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{found[0]}'")
    return con


def rows(result):
    """arro3 table -> list of dicts."""
    table = result.read_all() if hasattr(result, "read_all") else result
    columns = {name: table[name].to_pylist() for name in table.column_names}
    n = table.num_rows
    return [{name: columns[name][i] for name in columns} for i in range(n)]


COUNT_BY_DATE = "SELECT CAST(run_date AS VARCHAR) AS d, COUNT(*) AS n FROM t GROUP BY 1 ORDER BY 1"


def deltalake_counts(root, version=None):
    dt = DeltaTable(root, version=version) if version is not None else DeltaTable(root)
    out = {r["d"]: int(r["n"]) for r in rows(QueryBuilder().register("t", dt).execute(COUNT_BY_DATE))}
    return dt, out


def duckdb_counts(con, root):
    result = con.execute(
        f"SELECT CAST(run_date AS VARCHAR) AS d, COUNT(*) AS n FROM delta_scan('{root}') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {d: int(n) for d, n in result}


def gold_figures_deltalake(lake, date):
    def one(table, sql):
        dt = DeltaTable(os.path.join(lake, "gold", table))
        return rows(QueryBuilder().register("t", dt).execute(sql))

    kpi = one("kpi_summary", f"SELECT total_revenue, order_count FROM t WHERE run_date = DATE '{date}'")
    top = one(
        "revenue_by_country",
        f"SELECT country, revenue FROM t WHERE run_date = DATE '{date}' AND rank <= 3 ORDER BY rank",
    )
    return {"kpi": kpi, "top3": top}


def gold_figures_duckdb(con, lake, date):
    root = os.path.join(lake, "gold")
    kpi = con.execute(
        f"SELECT total_revenue, order_count FROM delta_scan('{root}/kpi_summary') WHERE run_date = DATE '{date}'"
    ).fetchall()
    top = con.execute(
        f"SELECT country, revenue FROM delta_scan('{root}/revenue_by_country') "
        f"WHERE run_date = DATE '{date}' AND rank <= 3 ORDER BY rank"
    ).fetchall()
    return {
        "kpi": [{"total_revenue": r[0], "order_count": r[1]} for r in kpi],
        "top3": [{"country": r[0], "revenue": r[1]} for r in top],
    }


def bits(value):
    """A float's exact bits, as an integer: JSON floats may round on the way."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


def with_bits(figures):
    for row in figures["kpi"]:
        row["total_revenue_bits"] = bits(row["total_revenue"])
    for row in figures["top3"]:
        row["revenue_bits"] = bits(row["revenue"])
    return figures


def main():
    lake, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    con = duckdb_connection()
    out = {"deltalake": {}, "duckdb": {}, "history": {}, "versions": {}}
    for table in spec["tables"]:
        root = os.path.join(lake, table)
        dt, counts = deltalake_counts(root)
        out["deltalake"][table] = counts
        out["versions"][table] = dt.version()
        out["history"][table] = [
            {"version": h.get("version"), "operation": h.get("operation"), "runId": h.get("runId")}
            for h in dt.history()
        ]
        out["duckdb"][table] = duckdb_counts(con, root)
    old = spec["old"]
    _, old_counts = deltalake_counts(os.path.join(lake, old["table"]), version=old["version"])
    out["old"] = old_counts
    out["gold"] = {
        "deltalake": with_bits(gold_figures_deltalake(lake, spec["gold_date"])),
        "duckdb": with_bits(gold_figures_duckdb(con, lake, spec["gold_date"])),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
