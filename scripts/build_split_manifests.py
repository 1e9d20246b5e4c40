"""Build the shipped split manifests ``pyiqa_agiqa/data/split_manifests/<key>.csv``.

Usage (from the repository root):
    python scripts/build_split_manifests.py [--dataset KEY ...] [--out-dir DIR] [--overwrite]

Input: the collected published split files in ``shared/datasets/`` beside the repository
(``MANIFESTS[key].collected``). Each is reduced to ``name`` + the published split columns
(``MANIFESTS[key].columns``), values checked, rows kept in file order, written with '\\n' line
ends: no label, no prompt. The output is deterministic; the tests check that the shipped files
equal a fresh build. Run ``scripts/build_bundled_meta_info.py`` afterwards: the bundled
meta-info is built with the shipped manifests.
"""
import argparse
import sys
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / 'shared' / 'datasets'

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pyiqa_agiqa.data.tables import write_meta_info  # noqa: E402
from pyiqa_agiqa.data.split_manifests import MANIFEST_DIR, MANIFESTS, reduce_manifest  # noqa: E402


def build_manifest(key, shared=SHARED):
    """The reduced manifest table of dataset ``key`` from the collected file under ``shared``."""
    source = Path(shared) / MANIFESTS[key].collected
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    return reduce_manifest(table, key, source)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', action='append', choices=sorted(MANIFESTS),
                        help='dataset key (repeatable; default: all)')
    parser.add_argument('--out-dir', type=Path, default=MANIFEST_DIR, help='output folder (default: the package)')
    parser.add_argument('--shared', type=Path, default=SHARED, help='folder of the collected split files')
    parser.add_argument('--overwrite', action='store_true', help='replace existing files')
    args = parser.parse_args(argv)
    for key in args.dataset or list(MANIFESTS):
        out = args.out_dir / f'{key}.csv'
        try:
            write_meta_info(build_manifest(key, args.shared), out, args.overwrite)
        except FileExistsError as error:
            parser.error(str(error))
        print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
