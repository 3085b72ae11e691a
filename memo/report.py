"""What ``run.py --dry-run`` and ``--status`` print."""

import json

STATUSES = ("ok", "error", "timeout")


def counts(points: list, rows: dict) -> dict:
    """Points of the grid by status, 'pending' for those without a record."""
    tally = dict.fromkeys((*STATUSES, "pending"), 0)
    for point in points:
        row = rows.get(point.id)
        tally[row["status"] if row else "pending"] += 1
    return tally


def varying(points: list) -> list:
    """Param names whose value is not the same for every point."""
    first = points[0].params if points else {}
    keys = {k for p in points for k in p.params}
    return sorted(
        k for k in keys if k != "seed" and any(p.params.get(k) != first.get(k) for p in points)
    )


def describe(params: dict, keys: list) -> str:
    return " ".join(f"{k}={json.dumps(params.get(k))}" for k in keys)


def summary_line(name: str, points: list, rows: dict) -> str:
    tally = counts(points, rows)
    parts = ", ".join(f"{n} {status}" for status, n in tally.items())
    return f"{name}: {len(points)} points: {parts}"


def dry_run(name: str, points: list, rows: dict, todo: list, show: int = 5) -> str:
    keys = varying(points)
    lines = [summary_line(name, points, rows), f"would run {len(todo)} points now"]
    lines += [f"  {p.id} #{p.index}: {describe(p.params, keys)}" for p in todo[:show]]
    if len(todo) > show:
        lines.append(f"  ... and {len(todo) - show} more")
    return "\n".join(lines)


def status(name: str, points: list, rows: dict, corrupt: list, show: int = 5) -> str:
    keys = varying(points)
    in_grid = {p.id: p for p in points}
    lines = [summary_line(name, points, rows)]
    stray = len(set(rows) - set(in_grid))
    if stray:
        lines.append(f"{stray} records are of points no longer in the grid (kept)")
    if corrupt:
        lines.append(
            f"{len(corrupt)} unreadable record files (their points count as pending): {', '.join(corrupt[:show])}"
        )
    failed = [r for i, r in rows.items() if i in in_grid and r["status"] != "ok"]
    if failed:
        lines.append("last failures:")
        for row in sorted(failed, key=lambda r: r.get("finished", ""), reverse=True)[:show]:
            point = in_grid[row["id"]]
            lines.append(
                f"  {row['id']} {describe(point.params, keys)}: {row.get('error', row['status'])}"
            )
    done = [r for i, r in rows.items() if i in in_grid and r["status"] == "ok"]
    if done:
        lines.append("slowest points:")
        for row in sorted(done, key=lambda r: r.get("wall_time", 0.0), reverse=True)[:show]:
            point = in_grid[row["id"]]
            lines.append(
                f"  {row['id']} {row.get('wall_time', 0.0):.2f} s {describe(point.params, keys)}"
            )
    return "\n".join(lines)
