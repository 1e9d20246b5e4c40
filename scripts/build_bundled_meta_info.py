"""Build the bundled meta-info CSVs (the MIT-licensed datasets): ``agiqa3k.csv`` and
``agiqa1k.csv`` in ``pyiqa_agiqa/data/meta_info/``.

Usage (from the repository root):
    python scripts/build_bundled_meta_info.py [--dataset agiqa3k|agiqa1k] [--out PATH] [--overwrite]

Inputs are the official metadata in ``shared/datasets/`` beside the repository; the split
columns come from the manifests shipped in ``pyiqa_agiqa/data/split_manifests/`` (built from the
collected split files by ``scripts/build_split_manifests.py``; run that first), exactly as
``pyiqa-agiqa prepare KEY --data FILE`` applies them for a user. ``--splits-csv`` adds a
manifest after the shipped one (its columns win). The output is deterministic: the same inputs
give a byte-identical file; the tests check that the bundled files equal a fresh build.
"""
import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / 'shared' / 'datasets'
META_INFO = REPO_ROOT / 'pyiqa_agiqa' / 'data' / 'meta_info'
SOURCES = {
    'agiqa3k': SHARED / 'AGIQA-3K' / 'data.csv',
    'agiqa1k': SHARED / 'AGIQA-1K' / 'AIGC_MOS_Zscore.xlsx',
}

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pyiqa_agiqa.data.prepare import prepare_meta_info  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', choices=sorted(SOURCES), default='agiqa3k')
    parser.add_argument('--out', type=Path, help='output CSV (default: the bundled file of the dataset)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.add_argument('--splits-csv', type=Path, help='a split manifest applied after the shipped one')
    args = parser.parse_args(argv)
    data = SOURCES[args.dataset]
    out = args.out or META_INFO / f'{args.dataset}.csv'
    try:
        warnings = prepare_meta_info(args.dataset, out, data=data, splits=args.splits_csv,
                                     overwrite=args.overwrite)
    except FileExistsError as error:
        parser.error(f'{error} (use --overwrite)')
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
