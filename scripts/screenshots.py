"""Make screenshots/*.png from the demo: the main screen during traffic (wide, and 80x24 as beside Claude Code in
a split terminal), a search, and a call's detail.

python scripts/screenshots.py          (needs rsvg-convert: Debian's librsvg2-bin, and fonts-dejavu-core)
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.app import GatewatchApp  # noqa: E402
from console.demo import Demo  # noqa: E402
from console.history import HistoryTable  # noqa: E402
from proxy.store import Store  # noqa: E402

OUT = ROOT / "screenshots"
SIZE = (140, 40)


def to_png(svg_path: Path, png_path: Path) -> None:
    """The three edits that make librsvg line the columns up (see the style notes), then convert."""
    svg = svg_path.read_text()
    svg = svg.replace('<svg class="rich-terminal"', '<svg class="rich-terminal" xml:space="preserve"', 1)
    svg = svg.replace("font-family: Fira Code, monospace;", 'font-family: "DejaVu Sans Mono", monospace;')
    svg = re.sub(r"font-size: 20px;", "font-size: 20px; letter-spacing: 0.16px;", svg)
    fixed = svg_path.with_suffix(".fixed.svg")
    fixed.write_text(svg)
    subprocess.run(
        ["rsvg-convert", "--background-color", "#000000", "-o", str(png_path), str(fixed)], check=True
    )


def top(app: GatewatchApp) -> None:
    """The Sessions view's cursor on its first row with a turn's session (the newest sessions keep coming)."""
    from textual.widgets import DataTable

    table = app.screen.query_one(DataTable)
    rows = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
    turn = next((i for i, r in enumerate(rows) if r.strip().startswith("◆")), 0)
    session = max((i for i, r in enumerate(rows[: turn + 1]) if r.startswith("▾")), default=0)
    table.move_cursor(row=session, animate=False)


async def main() -> None:
    if not shutil.which("rsvg-convert"):
        sys.exit("rsvg-convert not found: apt-get install librsvg2-bin fonts-dejavu-core")
    tmp = Path(tempfile.mkdtemp(prefix="gatewatch-shots-"))
    demo = Demo(rate=4.0, seed=7)
    store = Store(tmp / "demo.db", secrets=demo.config.secrets())
    app = GatewatchApp(
        demo.config,
        store,
        on_ready=demo.on_ready,
        before_start=demo.before_start,
        banner_note="demo: simulated upstream",
    )
    OUT.mkdir(exist_ok=True)
    shots: list[tuple[str, str]] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(12)  # let traffic accumulate
        shots.append(("main", app.save_screenshot(filename="main.svg", path=str(tmp))))
        await pilot.press("slash")
        await pilot.press(*"tool:Bash")
        await pilot.pause(1.0)
        shots.append(("search", app.save_screenshot(filename="search.svg", path=str(tmp))))
        await pilot.press("escape")
        table = app.query_one(HistoryTable)
        table.focus()
        await pilot.pause(0.5)
        streamed = [
            r.id for r in table.rows_loaded if r.request_mode == "stream" and r.status == 200 and r.tools_used
        ]
        table.move_cursor(row=table.get_row_index(streamed[0]) if streamed else 0)
        await pilot.press("enter")
        await pilot.pause(1.0)
        shots.append(("detail", app.save_screenshot(filename="detail.svg", path=str(tmp))))
        await pilot.press("4")  # nothing bound: harmless
        from textual.widgets import TabbedContent

        app.screen.query_one(TabbedContent).active = "tab-timing"
        await pilot.pause(0.5)
        shots.append(("detail-timing", app.save_screenshot(filename="timing.svg", path=str(tmp))))
        await pilot.press("escape")
        await pilot.pause(0.5)
        # a call Google refused (the demo's prompt for the whole monorepo): its Translation tab
        failed = [r.id for r in table.rows_loaded if r.status == 400]
        if failed:
            table.move_cursor(row=table.get_row_index(failed[-1]))
            await pilot.press("enter")
            await pilot.pause(1.0)
            await pilot.press("t")
            await pilot.pause(0.5)
            shots.append(("translation", app.save_screenshot(filename="translation.svg", path=str(tmp))))
            await pilot.press("escape")
            await pilot.pause(0.5)
        await pilot.press("escape")
        await pilot.press("s")  # the Sessions view
        await pilot.pause(1.5)
        top(app)  # the newest session, with its agents and turns under it
        await pilot.pause(0.3)
        shots.append(("sessions", app.save_screenshot(filename="sessions.svg", path=str(tmp))))
        await pilot.press("escape")
        await app.shutdown()
    # beside Claude Code: the same demo in a terminal's half
    demo = Demo(rate=4.0, seed=11)
    store = Store(tmp / "narrow.db", secrets=demo.config.secrets())
    app = GatewatchApp(
        demo.config,
        store,
        on_ready=demo.on_ready,
        before_start=demo.before_start,
        banner_note="demo: simulated upstream",
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(10)
        shots.append(("main-80x24", app.save_screenshot(filename="narrow.svg", path=str(tmp))))
        await pilot.press("s")  # the Sessions view beside Claude Code: turns, cache share, findings
        await pilot.pause(1.5)
        top(app)
        await pilot.pause(0.3)
        shots.append(("sessions-80x24", app.save_screenshot(filename="narrow-sessions.svg", path=str(tmp))))
        await pilot.press("escape")
        await app.shutdown()
    for name, svg in shots:
        to_png(Path(svg), OUT / f"{name}.png")
        print(OUT / f"{name}.png")


if __name__ == "__main__":
    asyncio.run(main())
