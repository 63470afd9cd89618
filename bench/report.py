"""Render bench/out/gateway.json and bench/out/store.json as the Markdown tables in RESULTS.md.

python bench/report.py > /tmp/tables.md
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def gateway_tables(rows: list[dict]) -> str:
    lines = [
        "| scenario | gateway | added p50 ms (ratio) | added p99 ms | added TTFE ms | req/s gw / direct | "
        "CPU ms/req | RSS idle→peak MB | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['peer']} | {r['error']} | | | | | | |")
            continue
        lines.append(
            f"| {r['scenario']} | {r['peer']} | +{r['gw_p50'] - r['direct_p50']:.2f} (×{r['gw_p50'] / r['direct_p50']:.2f}) "
            f"| {r['gw_p99'] - r['direct_p99']:+.1f} | +{r['gw_ttfe'] - r['direct_ttfe']:.2f} "
            f"| {r['gw_rps']:.0f} / {r['direct_rps']:.0f} | {r['cpu_ms_per_req']:.2f} "
            f"| {r['rss_idle_mb']:.0f}→{r['rss_peak_mb']:.0f} | {r['errors']} |"
        )
    checks = [f"- {r['peer']}: {r['stream_check']}" for r in rows if r.get("stream_check")]
    cpu = {}
    for r in rows:
        if "cpu_ms_per_req" in r:
            cpu.setdefault(r["scenario"], {})[r["peer"]] = r["cpu_ms_per_req"]
    ratio = [
        "| scenario | gatewatch CPU ÷ claude-code-router CPU | gatewatch CPU ÷ LiteLLM CPU |",
        "|---|---|---|",
    ]
    for sc, v in cpu.items():
        g = v.get("gatewatch")
        c = v.get("claude-code-router")
        lite = v.get("litellm")
        ratio.append(f"| {sc} | {g / c:.2f} |" if c else f"| {sc} | – |")
        ratio[-1] += f" {g / lite:.2f} |" if lite else " – |"
    return (
        "\n".join(lines)
        + "\n\nStream validity (official SDK accumulator over the peer's stream):\n"
        + ("\n".join(checks) or "- (no peers run)")
        + "\n\n"
        + "\n".join(ratio)
    )


def store_tables(data: dict) -> str:
    out = [
        "| records | payloads | submit µs/record (event loop) | committed records/s | DB MB |",
        "|---|---|---|---|---|",
    ]
    for s in data["store"]:
        out.append(
            f"| {s['records']:,} | {'yes' if s.get('payloads', True) else 'no'} | {s['submit_us_per_record']} "
            f"| {s['records_per_s_committed']:,} | {s['db_mb']:,} |"
        )
    names = list(data["store"][0]["query_ms"])
    out += [
        "",
        "| query (median of 5, ms) | " + " | ".join(f"{s['records']:,}" for s in data["store"]) + " |",
        "|---|" + "---|" * len(data["store"]),
    ]
    for n in names:
        out.append(f"| {n} | " + " | ".join(str(s["query_ms"][n]) for s in data["store"]) + " |")
    out += ["", "| console | figure |", "|---|---|"]
    for k, v in data["console"].items():
        out.append(f"| {k} | {v} |")
    return "\n".join(out)


def main() -> None:
    if (OUT / "gateway.json").exists():
        print(gateway_tables(json.loads((OUT / "gateway.json").read_text())))
        print()
    if (OUT / "store.json").exists():
        print(store_tables(json.loads((OUT / "store.json").read_text())))


if __name__ == "__main__":
    main()
