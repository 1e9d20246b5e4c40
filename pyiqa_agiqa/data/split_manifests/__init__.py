"""Published split manifests shipped with the package: image names and split values only.

``pyiqa-agiqa prepare KEY`` applies ``<KEY>.csv`` of this folder by default, so a meta-info
built from the official release files alone has every published split column (and the
val-carved variants computed from them), exactly as the bundled ``agiqa1k.csv`` /
``agiqa3k.csv``. ``scripts/build_split_manifests.py`` writes these files from the collected
split files in ``shared/datasets/`` (see ``MANIFESTS[key].collected``); the tests check that a
fresh build equals the shipped files.

What a manifest holds: column ``name`` (the image, as the reference implementation names it;
``MANIFESTS[key].name_rule`` says how it maps to the meta-info ``name``) and one column per
published split, ``{scheme}_split_{NN}``, with the values as published: ``train`` / ``test``
(AGIQA-1K also ``CONFLICT``, see below). Nothing else: no MOS or other label, no prompt, no
generator, no image. A manifest is a fact about a published evaluation protocol (which image
is on which side of which split); the labels and prompts of the datasets whose licence is not
stated (AIGCIQA2023, PKU-I2IQA, AIGIQA-20K) stay out of the package and come from the user's
copy of the release. Rows are in the order of the collected file.

Where the splits come from (``MANIFESTS[key].origin``):

- ``ipce_split_NN``: the IPCE reference code (Peng et al., NTIRE 2024 AIGC image track winner),
  repository ``woshidandan/Champion-Solution-for-CVPR-NTIRE-2024-Quality-Assessment-on-AIGC``
  (identical to ``pf0607/IPCE``), files ``Database/<dataset>/<N>/train.csv`` and ``val.csv``
  (its ``val.csv`` is the test part: the reference selects and reports on it). Dataset folders:
  ``AGIQA-1K`` (N = 0..10), ``AGIQA-3K``, ``AIGCIQA2023``, ``AIGC`` (= AIGIQA-20K, the 14,000
  official training images) (N = 1..10).
- ``cianet_split_NN``: the CIA-Net reference code (Zhou et al., Pattern Recognition 2025),
  repository ``TanSongBai/CIANet``, split files under ``IQA_Database/<dataset>/<N>/``
  (``AGIQA-3K``, ``AIGCIQA2023``, ``PKU-I2IQA``; N = 1..10).

The split files of each reference were collected into one table per dataset (the files named in
``MANIFESTS[key].collected``, relative to ``shared/datasets/``), then reduced to the columns
below. Left out on purpose: AGIQA-3K's ``qalign_split_1..5`` and ``ma_agiqa_seed20_712``
(image-level splits of a prompt dataset that no shipped method uses; the converter never
copied them) and AIGCIQA2023's ``model`` / ``model_file`` (pic-index facts, not splits).

Val-carved variants are not stored: ``prepare`` computes them from the published columns
(``MANIFESTS[key].carved``: scheme -> (published scheme, rule)), with seed 123 + NN, so the
published test set is kept exactly and checkpoints are selected on val, never on test.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

MANIFEST_DIR = Path(__file__).resolve().parent
_IPCE_REPO = 'woshidandan/Champion-Solution-for-CVPR-NTIRE-2024-Quality-Assessment-on-AIGC (= pf0607/IPCE)'
_CIANET_REPO = 'TanSongBai/CIANet'


def _columns(scheme, first=1, last=10):
    return tuple(f'{scheme}_split_{i:02d}' for i in range(first, last + 1))


@dataclass(frozen=True)
class ManifestInfo:
    """What ``<key>.csv`` holds and where it comes from."""

    key: str
    columns: Tuple[str, ...]  # the published split columns, in file order
    values: Tuple[str, ...]  # the values they may hold
    collected: str  # the collected split file, relative to shared/datasets/
    name_rule: str  # manifest name -> meta-info name
    origin: Dict[str, str]  # published scheme -> reference repository and files
    rules: Dict[str, str]  # published scheme -> what the split is
    carved: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # carved scheme -> (published, rule)

    @property
    def schemes(self):
        """Published schemes, in file order."""
        return tuple(dict.fromkeys(c.rsplit('_split_', 1)[0] for c in self.columns))

    def written_columns(self):
        """Every split column ``prepare`` writes from this manifest: published, then carved."""
        carved = tuple(c.replace(f'{source}_split_', f'{scheme}_split_')
                       for scheme, (source, _) in self.carved.items()
                       for c in self.columns if c.startswith(f'{source}_split_'))
        return self.columns + carved


MANIFESTS = {
    'agiqa1k': ManifestInfo(
        key='agiqa1k',
        columns=_columns('ipce', 0, 10),
        values=('train', 'test', 'CONFLICT'),
        collected='AGIQA-1K/splits_IPCE_AGIQA-1K.csv',
        name_rule='the Image column of AIGC_MOS_Zscore.xlsx (= meta-info name)',
        origin={'ipce': f'{_IPCE_REPO}: Database/AGIQA-1K/{{0..10}}/{{train,val}}.csv'},
        rules={'ipce': ('image-level 80/20 of the 1,080 xlsx rows (863 train / 216 test names); split 00 puts '
                        'the first 20 % of each generator\'s rows in test, 01..10 are random; the duplicated '
                        'name dreamStudio_8_9_1_1.jpg is CONFLICT where its two rows fell on both sides')},
        carved={'ipcev': ('ipce', 'carve_validation by image name: 1/8 of the training images to val')},
    ),
    'agiqa3k': ManifestInfo(
        key='agiqa3k',
        columns=_columns('ipce') + _columns('cianet'),
        values=('train', 'test'),
        collected='AGIQA-3K/splits_AGIQA-3K_IPCE_CIANet_QAlign_MAAGIQA.csv',
        name_rule='the name column of data.csv (= meta-info name)',
        origin={'ipce': f'{_IPCE_REPO}: Database/AGIQA-3K/{{1..10}}/{{train,val}}.csv',
                'cianet': f'{_CIANET_REPO}: IQA_Database/AGIQA-3K/{{1..10}}/'},
        rules={'ipce': 'prompt-disjoint 80/20 (240 / 60 prompts)',
               'cianet': 'prompt-disjoint 80/20 (240 / 60 prompts)'},
        carved={'ipcev': ('ipce', 'carve_validation by prompt: 30 of the 240 training prompts to val')},
    ),
    'aigciqa2023': ManifestInfo(
        key='aigciqa2023',
        columns=_columns('ipce') + _columns('cianet'),
        values=('train', 'test'),
        collected='AIGCIQA2023/splits_AIGCIQA2023_IPCE_CIANet.csv',
        name_rule='{i}.png = image i of the release (meta-info name Image/allimg/{i}.png; i = row of pic-index.xlsx)',
        origin={'ipce': f'{_IPCE_REPO}: Database/AIGCIQA2023/{{1..10}}/{{train,val}}.csv (rows keyed by model and '
                        'NNN-k.png, mapped to {i}.png by the official index rule)',
                'cianet': f'{_CIANET_REPO}: IQA_Database/AIGCIQA2023/{{1..10}}/'},
        rules={'ipce': 'image-level 80/20 (1,920 / 480 images)',
               'cianet': 'one image of each (model, prompt) group of four is test (1,800 / 600)'},
        carved={'cianetv': ('cianet', 'carve_validation_within_train by prompt: all training rows of 12 of the '
                                      '100 prompts to val')},
    ),
    'pku_i2iqa': ManifestInfo(
        key='pku_i2iqa',
        columns=_columns('cianet'),
        values=('train', 'test'),
        collected='PKU-I2IQA/splits_PKU-I2IQA_CIANet.csv',
        name_rule='the generated file name {MJ|SD}_{NNN}_{ij}.jpg (meta-info name Generated_image/All/<name>)',
        origin={'cianet': f'{_CIANET_REPO}: IQA_Database/PKU-I2IQA/{{1..10}}/'},
        rules={'cianet': 'one image of each (generator, source image) group of four is test (1,200 / 400)'},
        carved={'cianetv': ('cianet', 'carve_validation_within_train by source image: all training rows of 25 '
                                      'of the 200 source images to val')},
    ),
    'aigiqa20k': ManifestInfo(
        key='aigiqa20k',
        columns=_columns('ipce'),
        values=('train', 'test'),
        collected='AIGIQA-20K/splits_AIGIQA-20K_train14k_IPCE.csv',
        name_rule='the first column of info_train.csv (= meta-info name)',
        origin={'ipce': f'{_IPCE_REPO}: Database/AIGC/{{1..10}}/{{train,val}}.csv'},
        rules={'ipce': 'random image-level 90/10 of the 14,000 official training images (12,600 / 1,400 for '
                       'split 01, 12,599 / 1,401 for the others)'},
        carved={'ipcev': ('ipce', 'carve_validation by image name: 1/8 of the training images to val')},
    ),
}


def manifest_path(key: str) -> Path:
    """Where the shipped manifest of dataset ``key`` lives (whether or not the file exists)."""
    if key not in MANIFESTS:
        raise ValueError(f"no split manifest for '{key}'; known: {list(MANIFESTS)}")
    return MANIFEST_DIR / f'{key}.csv'


def shipped_manifest(key: str) -> Optional[Path]:
    """The shipped manifest of ``key``, or None if the package has none for it."""
    path = MANIFEST_DIR / f'{key}.csv'
    return path if key in MANIFESTS and path.is_file() else None


def is_shipped(path) -> bool:
    """True if ``path`` is one of the manifests shipped in this folder."""
    try:
        path = Path(path).resolve()
    except (TypeError, OSError):
        return False
    return path.parent == MANIFEST_DIR and path.stem in MANIFESTS


def reduce_manifest(table, key: str, source='the collected file'):
    """The shipped form of a collected split table: ``name`` + ``MANIFESTS[key].columns``.

    Raises ValueError (naming ``source``) if a column is missing, a name is empty or
    duplicated, or a value is not one of ``MANIFESTS[key].values``.
    """
    info = MANIFESTS[key]
    missing = [c for c in ('name', *info.columns) if c not in table.columns]
    if missing:
        raise ValueError(f'{source}: missing column(s) {missing}')
    reduced = table[['name', *info.columns]].astype(str).reset_index(drop=True)
    names = reduced['name']
    if names.str.strip().eq('').any() or names.duplicated().any():
        bad = names[names.str.strip().eq('') | names.duplicated(keep=False)].unique().tolist()
        raise ValueError(f'{source}: empty or duplicated name(s): {bad[:20]}')
    for column in info.columns:
        odd = sorted(set(reduced[column]) - set(info.values))
        if odd:
            raise ValueError(f'{source}: {column} has values {odd}; expected {list(info.values)}')
    return reduced
