"""Build or download memo's datasets into datasets/ (or $MEMO_DATASETS).

    python data.py                         # build every dataset that needs no download
    python data.py --name mnist cifar10    # build or download the named ones
    python data.py --list                  # every dataset: shapes, source, on disk or not

Downloads are checked against the official SHA-256 sums and kept in datasets/_downloads/;
without internet, copy the official files there by hand and run --name again.
"""

import argparse
import sys

from memo import datasets


def _shape(shape) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def list_datasets() -> None:
    """Print one row per dataset without building anything."""
    rows = [datasets.describe(name) for name in datasets.dataset_names()]
    width = max(len(row["name"]) for row in rows)
    print(f"{'name':{width}}  {'train':16}  {'test':16}  {'source':30}  on disk")
    for row in rows:
        print(
            f"{row['name']:{width}}  {_shape(row['train']):16}  {_shape(row['test']):16}  "
            f"{row['source']:30}  {'yes' if row['present'] else 'no'}"
        )
    for row in rows:
        if row["note"]:
            print(f"note: {row['note']}", file=sys.stderr)


def build(names: list[str]) -> None:
    """Build or download each name (and what it is made from)."""
    for name in names:
        datasets.entry(name)  # unknown names fail before any work starts
    for name in names:
        was_there = datasets.describe(name)["present"]
        datasets.prepare(name, download=True)
        print(f"{name}: {'already on disk' if was_there else 'ready'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--name", nargs="+", metavar="NAME", help="datasets to build")
    what.add_argument("--list", action="store_true", help="list datasets and exit")
    args = parser.parse_args(argv)
    try:
        if args.list:
            list_datasets()
        else:
            offline = [n for n in datasets.dataset_names() if not datasets.needs_download(n)]
            build(args.name or offline)
    except datasets.DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # say, MEMO_DATASETS names a file, or a disk that is full
        print(f"error: {error.filename or 'datasets'}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
