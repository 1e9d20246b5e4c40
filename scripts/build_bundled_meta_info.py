"""Build the bundled meta-info CSVs (the MIT-licensed datasets): ``agiqa3k.csv`` and
``agiqa1k.csv`` in ``pyiqa_agiqa/data/meta_info/``.

Usage (from the repository root):
    python scripts/build_bundled_meta_info.py [--dataset agiqa3k|agiqa1k] [--out PATH] [--overwrite]

Inputs are the official metadata and the published split manifests in ``shared/datasets/``
beside the repository. The output is deterministic: the same inputs give a byte-identical file;
the tests check that the bundled files equal a fresh build.
"""
import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / 'shared' / 'datasets'
META_INFO = REPO_ROOT / 'pyiqa_agiqa' / 'data' / 'meta_info'
SOURCES = {
    'agiqa3k': (SHARED / 'AGIQA-3K' / 'data.csv', SHARED / 'AGIQA-3K' / 'splits_AGIQA-3K_IPCE_CIANet_QAlign_MAAGIQA.csv'),
    'agiqa1k': (SHARED / 'AGIQA-1K' / 'AIGC_MOS_Zscore.xlsx', SHARED / 'AGIQA-1K' / 'splits_IPCE_AGIQA-1K.csv'),
}

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pyiqa_agiqa.data.prepare import prepare_meta_info  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', choices=sorted(SOURCES), default='agiqa3k')
    parser.add_argument('--out', type=Path, help='output CSV (default: the bundled file of the dataset)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    args = parser.parse_args(argv)
    data, splits = SOURCES[args.dataset]
    out = args.out or META_INFO / f'{args.dataset}.csv'
    try:
        warnings = prepare_meta_info(args.dataset, out, data=data, splits=splits, overwrite=args.overwrite)
    except FileExistsError as error:
        parser.error(f'{error} (use --overwrite)')
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
