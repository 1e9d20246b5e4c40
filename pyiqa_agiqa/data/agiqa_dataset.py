"""Prompt-aware dataset for AI-generated images, registered in pyiqa's DATASET_REGISTRY.

Meta-info format (one row per image; the package's converters write it):
``name`` (image path relative to ``dataroot_target``), ``mos_quality``, ``prompt``, other
label columns ``mos_*`` (``mos_authenticity``, ``mos_correspondence``), ``std_*``,
``generator``, ``group`` and split columns ``{scheme}_split_{NN}`` holding
``train`` / ``val`` / ``test``.

Options (a dataset block of a pyiqa option file):
    type: AGIQADataset
    name: any name (shown in logs and result tables)
    meta_info_file: path of a meta-info CSV, or the name of a bundled one (``agiqa3k``)
    dataroot_target: image folder
    split_index: int N -> column ``{split_scheme}_split_{N:02d}``, or a column name;
        absent -> all rows. pyiqa's multi-split runner sets it to 1..split_num.
    split_scheme: prefix used with an int split_index (default ``default``)
    mos_columns: label columns returned, in this order (default: every ``mos_*`` column)
    mos_divisor: labels are divided by it (1 = raw scale; e.g. 20 for AIGCIQA2023 in IPCE)
    augment: pyiqa augmentations (random_crop, resize, hflip, ...); unknown keys are errors
    views: multi-view cutting, e.g. ``{type: IPCEViews, min_side: 512}``; random views for
        the train phase, fixed views otherwise
    check_images: verify before training that every image of the split exists and has a
        readable header (default true); all problems are reported at once
    max_pixels: the pixel limit of this dataset's images (default: PIL's
        ``Image.MAX_IMAGE_PIXELS``, 89,478,485; 0: none), for genuine images over it; an image
        over the limit is refused from its header as a decompression bomb
    load_reference: also return the source image of image-to-image datasets (column
        ``ref_name``, PKU-I2IQA) as ``ref_img``, transformed like ``img`` but with its own
        random draws (the two images differ in size); default false. The training model then
        calls ``net(img, ref_img, prompt=...)``, which only a network with
        ``takes_reference = True`` accepts (none of the four published methods; training
        refuses the option for them unless ``train: {use_ref: false}``)
    plus pyiqa's loader keys (batch_size_per_gpu, num_worker_per_gpu, use_shuffle, ...).

Image names (``name``, ``ref_name``) are paths relative to ``dataroot_target``: a name that is
absolute or goes up with ``..`` (out of the image folder) is refused, naming the rows.

Each item: ``img`` (3, H, W) in [0, 1], or (V, 3, P, P) with ``views``; ``mos_label``
(D,) float; ``labels`` {column: float tensor}; ``std`` {column: float tensor} with the
published standard deviations (``std_*`` columns) when the meta-info has them, on the same
scale as the labels; ``prompt`` str; ``img_path`` str; ``generator`` str when the meta-info
has it; ``ref_img`` / ``ref_path`` with ``load_reference``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision.transforms as T

from pyiqa.data.base_iqa_dataset import BaseIQADataset
from pyiqa.data.transforms import PairedToTensor, transform_mapping
from pyiqa.utils.registry import DATASET_REGISTRY

from ..archs.ipce_arch import IPCEViews
from ..errors import OptionError
from .image_io import load_rgb, pixel_limit, probe_image
from .tables import read_meta_info

BUNDLED_META_INFO_DIR = Path(__file__).resolve().parent / 'meta_info'
PYIQA_AUGMENT_KEYS = ('random_crop', 'center_crop', 'resize', 'adaptive_resize', 'random_square_resize',
                      'random_arp_resize', 'ada_pad', 'rot90', 'randomerase', 'hflip', 'vflip', 'totensor')
VIEW_TYPES = {'IPCEViews': IPCEViews}
OPTION_KEYS = {
    # this dataset
    'type', 'name', 'meta_info_file', 'dataroot_target', 'split_index', 'split_scheme', 'mos_columns',
    'mos_divisor', 'augment', 'views', 'check_images', 'load_reference', 'phase', 'override_phase', 'max_pixels',
    # pyiqa's loaders and option parser
    'batch_size_per_gpu', 'num_worker_per_gpu', 'use_shuffle', 'pin_memory', 'persistent_workers',
    'prefetch_mode', 'num_prefetch_queue', 'dataset_enlarge_ratio', 'scale',
}


class DatasetOptionError(OptionError):
    """A dataset option is unknown or has a wrong value."""


def bundled_meta_info() -> dict:
    """{name: path} of the meta-info CSVs shipped with the package."""
    return {p.stem: p for p in sorted(BUNDLED_META_INFO_DIR.glob('*.csv'))}


def resolve_meta_info_file(value: str) -> Path:
    """A meta-info path, or the path of the bundled meta-info of that name."""
    if value is None:
        raise DatasetOptionError('option meta_info_file is required (a CSV path or a bundled name)')
    path = Path(os.path.expanduser(str(value)))
    if path.is_file():
        return path
    bundled = bundled_meta_info()
    if str(value) in bundled:
        return bundled[str(value)]
    raise FileNotFoundError(f"meta_info_file '{value}' is neither an existing file nor a bundled meta-info "
                            f"(bundled: {', '.join(bundled) or 'none'})")


def _number(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _leaves_folder(name: str) -> bool:
    """True for an image name that is not a path inside its folder (absolute, or with '..')."""
    parts = name.replace('\\', '/').split('/')
    return os.path.isabs(name) or name.startswith(('/', '\\')) or '..' in parts


@DATASET_REGISTRY.register()
class AGIQADataset(BaseIQADataset):
    """Images with their prompt and every label dimension of an AGIQA dataset."""

    def __init__(self, opt):
        self.check_options(opt, f"dataset '{opt.get('name')}'")
        self.max_pixels = opt.get('max_pixels')
        self.pixel_fix = (f"max_pixels: N in the block of dataset '{opt.get('name')}' of the option file (0: no "
                          'limit)')
        super().__init__(opt)
        if not self.paths_mos:
            raise DatasetOptionError(f"dataset '{opt.get('name')}': no rows for phase '{self.phase}' "
                                     f"in split '{self.split_name}' of {self.meta_info_path}")
        if opt.get('check_images', True):
            self.check_images()

    @staticmethod
    def check_options(opt: dict, where: str) -> None:
        """Raise DatasetOptionError for an unknown key of the block, of its ``augment`` or of
        its ``views`` (which must name a known view type and only that type's arguments)."""
        from ..options import check_constructor_options, check_keys

        try:
            check_keys(opt, OPTION_KEYS, where)
            check_keys(opt.get('augment'), PYIQA_AUGMENT_KEYS, f'{where}.augment')
            views = opt.get('views')
            if views:
                if not isinstance(views, dict) or views.get('type') not in VIEW_TYPES:
                    raise DatasetOptionError(f"{where}.views.type must be one of {list(VIEW_TYPES)}, got "
                                             f"{views.get('type') if isinstance(views, dict) else views!r}")
                check_constructor_options(VIEW_TYPES[views['type']], views, f'{where}.views')
            divisor = opt.get('mos_divisor', 1.0)
            if not _number(divisor) or not divisor > 0:
                raise DatasetOptionError(f'{where}: mos_divisor must be > 0 (a finite number: labels are divided '
                                         f'by it), got {divisor!r}')
            limit = opt.get('max_pixels')
            if limit is not None and (not _number(limit) or not float(limit).is_integer() or limit < 0):
                raise DatasetOptionError(f'{where}: max_pixels must be a whole number >= 0 (the pixel limit of '
                                         f'its images; 0: none), got {limit!r}')
        except DatasetOptionError:
            raise
        except OptionError as error:
            raise DatasetOptionError(str(error)) from None

    # ----- pyiqa's construction steps (called in this order by BaseIQADataset) -----
    def init_path_mos(self, opt):
        self.meta_info_path = resolve_meta_info_file(opt.get('meta_info_file'))
        self.meta_info = read_meta_info(self.meta_info_path)
        mos_columns = opt.get('mos_columns') or [c for c in self.meta_info.columns if c.startswith('mos_')]
        missing = [c for c in mos_columns if c not in self.meta_info.columns]
        if missing:
            labels = [c for c in self.meta_info.columns if c.startswith('mos_')]
            raise DatasetOptionError(f'mos_columns {missing} not in {self.meta_info_path}; '
                                     f'label columns there: {labels}')
        self.mos_columns = list(mos_columns)
        self.std_columns = [c for c in self.meta_info.columns if c.startswith('std_')]
        if opt.get('dataroot_target') is None:
            raise DatasetOptionError(f"dataset '{opt.get('name')}': option dataroot_target (image folder) is required")
        root = os.path.expanduser(opt['dataroot_target'])
        has_generator = 'generator' in self.meta_info.columns
        self.load_reference = bool(opt.get('load_reference', False))
        if self.load_reference and 'ref_name' not in self.meta_info.columns:
            raise DatasetOptionError(f'load_reference needs a ref_name column, which {self.meta_info_path} lacks')
        self._check_names(['name'] + (['ref_name'] if self.load_reference else []))
        self.paths_mos = [
            dict(row=i, img_path=os.path.join(root, str(r['name'])), prompt=str(r['prompt']),
                 labels=[float(r[c]) for c in self.mos_columns], stds=[float(r[c]) for c in self.std_columns],
                 generator=str(r['generator']) if has_generator else None,
                 ref_path=os.path.join(root, str(r['ref_name'])) if self.load_reference else None)
            for i, r in enumerate(self.meta_info.to_dict('records'))
        ]

    def _check_names(self, columns) -> None:
        """Image names must stay inside dataroot_target: relative, without a '..' part."""
        bad = [(i, c, str(v)) for c in columns for i, v in enumerate(self.meta_info[c].tolist())
               if _leaves_folder(str(v))]
        if bad:
            shown = ', '.join(f'row {i + 1} {c} {v!r}' for i, c, v in bad[:5])
            more = f' and {len(bad) - 5} more' if len(bad) > 5 else ''
            raise DatasetOptionError(
                f"{self.meta_info_path}: {len(bad)} image name(s) leave the image folder dataroot_target ({shown}"
                f"{more}; rows counted from the first data row): names are paths relative to dataroot_target, "
                "without '..' or a leading '/'; fix those rows (pyiqa-agiqa prepare writes such names) or move the "
                'images under dataroot_target')

    def mos_normalize(self, opt):
        divisor = float(opt.get('mos_divisor', 1.0))
        if divisor <= 0:
            raise DatasetOptionError(f'mos_divisor must be > 0, got {divisor}')
        for item in self.paths_mos:
            item['labels'] = [v / divisor for v in item['labels']]
            item['stds'] = [v / divisor for v in item['stds']]

    def get_split(self, opt):
        index = opt.get('split_index')
        self.split_name = 'all rows'
        if index is None:
            return
        columns = [c for c in self.meta_info.columns if '_split_' in c]
        if isinstance(index, bool) or not isinstance(index, (int, str)):
            raise DatasetOptionError(f'split_index must be an int or a column name, got {index!r}')
        name = f"{opt.get('split_scheme', 'default')}_split_{index:02d}" if isinstance(index, int) else index
        if name not in columns:
            raise DatasetOptionError(f"split '{name}' is not a column of {self.meta_info_path}; "
                                     f'split columns there: {columns}')
        self.split_name = name
        parts = self.meta_info[name].astype(str).str.strip().tolist()
        self.paths_mos = [item for item in self.paths_mos if parts[item['row']] == self.phase]

    def get_transforms(self, opt):
        augment = opt.get('augment') or {}
        transforms = [t for k, v in augment.items() if k != 'totensor' for t in transform_mapping(k, v)]
        self.trans = T.Compose(transforms + [PairedToTensor()])
        self.views = None
        if opt.get('views'):
            view_opt = dict(opt['views'])
            view_type = view_opt.pop('type', None)
            if view_type not in VIEW_TYPES:
                raise DatasetOptionError(f'views.type must be one of {list(VIEW_TYPES)}, got {view_type!r}')
            self.views = VIEW_TYPES[view_type](**view_opt)

    # ----- checks and items -----
    def check_images(self):
        """Raise FileNotFoundError listing every missing or unreadable image of this split."""
        paths = [(item['row'], item[key]) for item in self.paths_mos for key in ('img_path', 'ref_path')
                 if item[key] is not None]
        with pixel_limit(self.max_pixels):
            problems = [(row, path, reason) for row, path in paths if (reason := probe_image(path, self.pixel_fix))]
        if problems:
            shown = '\n'.join(f'  row {row + 1}: {path}: {reason}' for row, path, reason in problems[:20])
            more = f'\n  ... and {len(problems) - 20} more' if len(problems) > 20 else ''
            raise FileNotFoundError(
                f"dataset '{self.opt.get('name')}': {len(problems)} of {len(self.paths_mos)} images of split "
                f"'{self.split_name}' ({self.phase}) cannot be used (meta-info {self.meta_info_path}, "
                f"rows counted from the first data row):\n{shown}{more}")

    def load_image(self, path: str) -> torch.Tensor:
        """Read, (views-)resize, augment and (views-)cut one image."""
        with pixel_limit(self.max_pixels):
            img = load_rgb(path, fix=self.pixel_fix)
        if self.views is not None:
            img = self.views.resize(img)
        img = self.trans(img)
        if self.views is not None:
            img = self.views(img, train=self.phase == 'train')
        return img

    def __getitem__(self, index):
        item = self.paths_mos[index]
        labels = torch.tensor(item['labels'], dtype=torch.float32)
        sample = {'img': self.load_image(item['img_path']), 'mos_label': labels,
                  'labels': dict(zip(self.mos_columns, labels)), 'prompt': item['prompt'], 'img_path': item['img_path']}
        if self.std_columns:
            sample['std'] = dict(zip(self.std_columns, torch.tensor(item['stds'], dtype=torch.float32)))
        if item['generator'] is not None:
            sample['generator'] = item['generator']
        if item['ref_path'] is not None:
            sample['ref_img'], sample['ref_path'] = self.load_image(item['ref_path']), item['ref_path']
        return sample
