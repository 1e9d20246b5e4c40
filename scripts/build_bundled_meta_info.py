"""Build the bundled AGIQA-3K meta-info CSV, ``pyiqa_agiqa/data/meta_info/agiqa3k.csv``.

Usage (from the repository root):
    python scripts/build_bundled_meta_info.py [--data-csv PATH] [--splits-csv PATH]
                                              [--out PATH] [--overwrite]

Inputs default to ``shared/datasets/AGIQA-3K/`` beside the repository (the official
``data.csv`` and the published split manifest). The output is deterministic: the same inputs
give a byte-identical file. ``tests/test_splits_agiqa3k.py`` checks that the bundled file
equals a fresh build.
"""
import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
AGIQA3K_DIR = REPO_ROOT.parent / 'shared' / 'datasets' / 'AGIQA-3K'
DEFAULT_DATA_CSV = AGIQA3K_DIR / 'data.csv'
DEFAULT_SPLITS_CSV = AGIQA3K_DIR / 'splits_AGIQA-3K_IPCE_CIANet_QAlign_MAAGIQA.csv'
DEFAULT_OUT = REPO_ROOT / 'pyiqa_agiqa' / 'data' / 'meta_info' / 'agiqa3k.csv'

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pyiqa_agiqa.data.prepare.agiqa3k import build_agiqa3k_meta_info, write_meta_info  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-csv', type=Path, default=DEFAULT_DATA_CSV,
                        help='official AGIQA-3K data.csv (default: %(default)s)')
    parser.add_argument('--splits-csv', type=Path, default=DEFAULT_SPLITS_CSV,
                        help='published split manifest (default: %(default)s)')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT,
                        help='output CSV (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    args = parser.parse_args(argv)
    df = build_agiqa3k_meta_info(args.data_csv, args.splits_csv)
    try:
        write_meta_info(df, args.out, overwrite=args.overwrite)
    except FileExistsError as error:
        parser.error(f'{error} (use --overwrite)')
    print(f'wrote {args.out}: {len(df)} rows, {df.shape[1]} columns')
    return 0


if __name__ == '__main__':
    sys.exit(main())
