"""Draw an experiment's figures.

    python plot.py [--name] NAME [--only PLOT ...] [--format png,pdf]

Reads the "plots" list of experiments/NAME.json (or of a .json file given by its path, as
run.py takes it; NAME is then the file's name without .json) and writes each entry to
plots/NAME/<plot name>.<format> (png and pdf by default), each file written to a temp
name and renamed, so a crash never leaves half a figure. The plot types and their keys
are in memo/plots (``python -c "import memo.plots as p; help(p.PLOTS['heatmap'])"``).

Results: heatmap, slices, line, scatter and table read results/NAME.csv (ok rows only); curves
read the per-epoch records of the points in that CSV through memo.store, so every plot
shows the grid as run.py last collected it (`run.py --collect` rewrites the CSV). Where the
CSV is missing or older than the records (a run stopped by Ctrl-C, or still going), the
records are read instead, with a note. A note says when that is only part of the grid.
Plots that read datasets instead (dataset_2d, dataset_images, boundary_2d) are drawn even
when there are no results yet.

Exit status: 0 when every selected plot was drawn; 1 when some plot failed (one line
each on stderr naming the plot and the key; the others are still drawn); 2 when the
experiment or its "plots" list is missing or bad, or some selected plot needs results
that do not exist yet or cannot be read (one line; the plots that need no results are
still drawn).
"""

import argparse
import json
import sys

FORMATS = ("png", "pdf", "svg")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Draw the plots of experiments/NAME.json.")
    parser.add_argument(
        "experiment", nargs="?", metavar="NAME", help="the experiment, as --name NAME"
    )
    parser.add_argument(
        "--name", help="experiment: experiments/NAME.json, or a path to a .json file (as run.py)"
    )
    parser.add_argument("--only", nargs="+", metavar="PLOT", help="draw only these plots (by name)")
    parser.add_argument(
        "--format", default="png,pdf", help="comma-separated formats (default png,pdf)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    args = parser.parse_args(argv)
    if args.experiment and args.name and args.experiment != args.name:
        parser.error(f"the experiment given twice: {args.experiment} and --name {args.name}")
    args.name = args.name or args.experiment
    if not args.name:
        parser.error("the following arguments are required: NAME or --name NAME")
    args.formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in args.formats if f not in FORMATS]
    if bad or not args.formats:
        parser.error(
            f"--format: unknown format {','.join(bad)!r}; choose from {', '.join(FORMATS)}"
        )
    return args


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def load_entries(path, only):
    """The plot entries of the spec file ``path`` (those named by --only); a one-line message
    if unusable."""
    try:
        spec = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        return None, f"cannot read {path}: {e}"
    entries = spec.get("plots") if isinstance(spec, dict) else None
    if not isinstance(entries, list) or not entries:
        return None, f'{path} has no "plots" list; add one (see memo/plots) to draw figures'
    names = [e.get("name") if isinstance(e, dict) else None for e in entries]
    dup = sorted({n for n in names if n is not None and names.count(n) > 1})
    if dup:
        return (
            None,
            f"{path}: plot names must be unique (they name the files); repeated: {', '.join(dup)}",
        )
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            return (
                None,
                f"--only: no plot named {', '.join(unknown)} in {path};"
                f" plots: {', '.join(map(str, names))}",
            )
        entries = [e for e, n in zip(entries, names) if n in only]
    return entries, None


def main(argv=None) -> int:
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    from memo import plots
    from memo.run.spec import SpecError, spec_path
    from memo.store import paths

    try:  # run.py's reading of --name: experiments/NAME.json or a path to a .json file
        path = spec_path(args.name)
    except SpecError as e:
        return fail(str(e))
    entries, problem = load_entries(path, args.only)
    if problem:
        return fail(problem)
    experiment = path.stem  # what names its results and figures
    loaders = {"results": plots.load_table, "curves": plots.load_curves}
    tables, failed, waiting = {}, 0, []
    unfit = column_errors(args.name)
    out_dir = paths.plots_dir() / experiment
    print(f"Drawing {len(entries)} plot(s) of {experiment} into {out_dir}")
    for number, entry in enumerate(entries):
        name = entry.get("name", f"#{number}") if isinstance(entry, dict) else f"#{number}"
        kind = entry.get("type", "?") if isinstance(entry, dict) else "?"
        try:
            if name in unfit:
                raise unfit[name]
            cfg = plots.validate(entry)
            needs = plots.PLOTS[cfg["type"]].needs
            if needs and needs not in tables:
                try:
                    tables[needs] = loaders[needs](experiment)
                except (plots.MissingResults, plots.BadResults) as e:
                    tables[needs] = e
                if not isinstance(tables[needs], Exception) and tables[needs].attrs.get("note"):
                    print(tables[needs].attrs["note"])  # drawn from the records, not the table
                if needs == "results" and not isinstance(tables[needs], Exception):
                    note_pending(args.name, tables[needs])
            if isinstance(tables.get(needs), Exception):
                waiting.append(name)
                continue
            drawn = plots.draw(cfg, tables.get(needs))
            written = plots.save(drawn, out_dir / cfg["name"], args.formats)
            print(f"  {name} ({kind}): {', '.join(p.name for p in written)}")
        except plots.PlotError as e:
            failed += 1
            print(f"error: plot {name!r} ({kind}): {e}", file=sys.stderr)
        except Exception as e:  # a bug, not a user mistake: one line unless --debug
            if args.debug:
                raise
            failed += 1
            print(
                f"error: plot {name!r} ({kind}): unexpected {type(e).__name__}: {e}"
                " (--debug shows the traceback)",
                file=sys.stderr,
            )
    if waiting:
        problem = next(e for e in tables.values() if isinstance(e, Exception))
        if isinstance(problem, plots.BadResults):
            return fail(f"{problem}. Not drawn: {', '.join(waiting)}")
        folder = paths.results_dir() / experiment
        if (
            any(folder.glob("*.json"))
            or any(folder.glob("_journal/*.jsonl"))
            or any(folder.glob("records.parquet"))
        ):  # records, but no table
            todo = f"write it from the records with `python run.py --name {args.name} --collect`"
        else:
            todo = f"run `python run.py --name {args.name}` first"
        return fail(
            f"no results for {experiment} ({problem}); {todo}. Not drawn: {', '.join(waiting)}"
        )
    return 1 if failed else 0


def column_errors(name: str) -> dict:
    """{plot name: PlotError} for the plot entries naming columns the trial does not give."""
    from memo.plots.check import plot_errors
    from memo.run.spec import SpecError, load_spec

    try:
        spec = load_spec(name)
    except SpecError:
        return {}  # load_entries said what is wrong with the file, or only the grid is bad
    entries = spec.plots
    return {entries[i].get("name"): e for i, e in plot_errors(spec).items() if _named(entries[i])}


def _named(entry) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("name"), str)


def note_pending(name: str, table) -> None:
    """Say so when the figures show only part of the grid (points pending or failed)."""
    from memo.run.spec import SpecError, load_spec

    try:
        total = len(load_spec(name).points())
    except SpecError:
        return  # the spec changed into a bad one since the run; the figures still show the CSV
    if len(table) < total:
        print(
            f"note: {len(table)} of {total} grid points have ok results; the figures show"
            f" those (python run.py --name {name} --status says why the rest have none)"
        )


if __name__ == "__main__":
    sys.exit(main())
