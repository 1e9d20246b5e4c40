"""AGIQADataset and image reading: batches, splits, options, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pyiqa.data import build_dataset

from pyiqa_agiqa.data.agiqa_dataset import DatasetOptionError, bundled_meta_info
from pyiqa_agiqa.data.image_io import ImageReadError, load_rgb

from conftest import DEMO_VIEWS, dataset_opt, rounding


def test_train_batches_carry_views_labels_and_prompts(demo_data):
    dataset = build_dataset(dataset_opt(demo_data, 'train', augment={'hflip': True}))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch['img'].shape == (4, 9, 3, 32, 32)
    assert 0 <= batch['img'].min() and batch['img'].max() <= 1
    assert batch['mos_label'].shape == (4, 2)
    assert set(batch['labels']) == {'mos_quality', 'mos_correspondence'}
    assert torch.equal(batch['labels']['mos_correspondence'], batch['mos_label'][:, 1])
    assert len(batch['prompt']) == 4 and all(p.startswith('a ') for p in batch['prompt'])
    assert len(batch['img_path']) == 4 and len(batch['generator']) == 4


def test_split_parts_are_disjoint_and_follow_the_column(demo_data):
    csv, _ = demo_data
    table = pd.read_csv(csv)
    names = {}
    for phase in ('train', 'val', 'test'):
        dataset = build_dataset(dataset_opt(demo_data, phase))
        names[phase] = {p.split('/')[-1] for p in (item['img_path'] for item in dataset.paths_mos)}
        assert names[phase] == set(table.loc[table['demo_split_01'] == phase, 'name'])
    assert not (names['train'] & names['test']) and not (names['val'] & names['test'])


def test_test_views_are_fixed_and_labels_can_be_selected_and_scaled(demo_data):
    dataset = build_dataset(dataset_opt(demo_data, 'test', mos_columns=['mos_quality'], mos_divisor=5))
    a, b = dataset[0], dataset[0]
    assert a['img'].shape == (16, 3, 32, 32) and torch.equal(a['img'], b['img'])
    raw = pd.read_csv(demo_data[0]).set_index('name').loc[a['img_path'].split('/')[-1]]
    one_rounding = rounding(torch.float32, ops=1)  # divided in float64, then stored as float32
    assert a['mos_label'].shape == (1,)
    assert a['mos_label'].item() == pytest.approx(raw['mos_quality'] / 5, rel=one_rounding)
    assert a['std']['std_quality'].item() == pytest.approx(raw['std_quality'] / 5, rel=one_rounding)  # labels' scale


def test_without_views_items_are_whole_images(demo_data):
    opt = dataset_opt(demo_data, 'test')
    opt.pop('views')
    item = build_dataset(opt)[0]
    assert item['img'].shape == (3, 64, 64)


def test_bundled_agiqa3k_meta_info_is_found():
    assert 'agiqa3k' in bundled_meta_info()
    table = pd.read_csv(bundled_meta_info()['agiqa3k'])
    assert len(table) == 2982 and list(table.columns[:3]) == ['name', 'mos_quality', 'prompt']
    assert {'ipcev_split_01', 'default_split_10', 'cianet_split_01'} <= set(table.columns)


@pytest.mark.parametrize('extra, message', [
    ({'augmnet': {'hflip': True}}, "unknown option\\(s\\) \\['augmnet'\\]"),
    ({'augment': {'hflp': True}}, "unknown option\\(s\\) \\['hflp'\\] in section dataset 'demo_train'.augment "
                                  "\\('hflp' -> did you mean 'hflip'\\?\\)"),
    ({'views': dict(DEMO_VIEWS, n_trian=4)}, "\\['n_trian'\\] in section dataset 'demo_train'.views "
                                             "\\('n_trian' -> did you mean 'n_train'\\?\\)"),
    ({'split_index': 7}, "split 'demo_split_07' is not a column"),
    ({'mos_columns': ['mos_authenticity']}, "mos_columns \\['mos_authenticity'\\] not in"),
    ({'views': {'type': 'Nope'}}, 'views.type must be one of'),
    ({'mos_divisor': 0}, 'mos_divisor must be > 0'),
])
def test_option_errors_are_named(demo_data, extra, message):
    with pytest.raises(DatasetOptionError, match=message):
        build_dataset(dataset_opt(demo_data, 'train', **extra))


def test_unknown_meta_info_file_lists_bundled():
    with pytest.raises(FileNotFoundError, match='bundled: .*agiqa3k'):
        build_dataset(dict(name='x', type='AGIQADataset', meta_info_file='agiqa9k', dataroot_target='.'))


def test_missing_and_corrupt_images_are_reported_together(demo_data, tmp_path):
    csv, images = demo_data
    table = pd.read_csv(csv)
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in table['name']:
        (folder / name).write_bytes((images / name).read_bytes())
    test_rows = table.index[table['demo_split_01'] == 'test']
    (folder / table.loc[test_rows[0], 'name']).unlink()
    (folder / table.loc[test_rows[1], 'name']).write_bytes(b'not an image')
    opt = dataset_opt((csv, folder), 'test')
    with pytest.raises(FileNotFoundError) as info:
        build_dataset(opt)
    message = str(info.value)
    assert '2 of' in message and 'missing' in message and 'unreadable' in message
    assert f'row {test_rows[0] + 1}:' in message and table.loc[test_rows[1], 'name'] in message


def test_malformed_meta_info_names_file_and_row(demo_data, tmp_path):
    csv, images = demo_data
    table = pd.read_csv(csv)
    table.loc[4, 'prompt'] = ' '
    bad = tmp_path / 'bad.csv'
    table.to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r'(?s)bad\.csv.*row 5'):
        build_dataset(dataset_opt((bad, images), 'train'))


@pytest.mark.parametrize('mode', ['L', 'LA', 'RGBA', 'P', 'I;16', 'CMYK', '1'])
def test_odd_image_modes_become_consistent_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8))
    if mode == 'I;16':
        grey = np.asarray(rgb.convert('L'), dtype=np.uint16) * 257
        img = Image.fromarray(grey)  # 16-bit grey, saved as a 16-bit PNG
        expected = np.repeat(np.asarray(rgb.convert('L'))[..., None], 3, axis=2)
    elif mode in ('RGBA', 'LA'):
        img = rgb.convert(mode)
        alpha = Image.new('L', img.size, 0)
        img.putalpha(alpha)  # fully transparent: composited over white
        expected = np.full((16, 20, 3), 255, np.uint8)
    else:
        img = rgb.convert(mode)
        expected = np.asarray(img.convert('RGB'))
    path = tmp_path / f"img_{mode.replace(';', '')}.{'tif' if mode == 'CMYK' else 'png'}"
    img.save(path)
    out = load_rgb(path)
    assert out.mode == 'RGB' and out.size == (20, 16)
    # at most one 8-bit level, the quantisation step of the 16-bit scaling and of PIL's integer mode conversions
    assert np.abs(np.asarray(out).astype(int) - expected.astype(int)).max() <= 1


def test_unreadable_images_raise_naming_the_file(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8\xff garbage')
    with pytest.raises(ImageReadError, match='broken.jpg'):
        load_rgb(bad)
    with pytest.raises(ImageReadError, match='not found.*nothere.png'):
        load_rgb(tmp_path / 'nothere.png')


def test_reference_images_of_image_to_image_datasets(demo_data, tmp_path):
    csv, images = demo_data
    table = pd.read_csv(csv)
    table['ref_name'] = table['name'].iloc[::-1].values  # any other image stands in for the source image
    with_ref = tmp_path / 'with_ref.csv'
    table.to_csv(with_ref, index=False)
    dataset = build_dataset(dataset_opt((with_ref, images), 'test', load_reference=True))
    item = dataset[0]
    assert item['ref_img'].shape == item['img'].shape and item['ref_path'].endswith('.png')
    assert 'ref_img' not in build_dataset(dataset_opt((with_ref, images), 'test'))[0]
    with pytest.raises(DatasetOptionError, match='needs a ref_name column'):
        build_dataset(dataset_opt(demo_data, 'test', load_reference=True))


def test_download_without_mirror_or_network_says_where_to_get_it(tmp_path, monkeypatch):
    from pyiqa_agiqa.data.download import DownloadError, download_dataset

    with pytest.raises(DownloadError, match='no public mirror is known for .pku_i2iqa.*github.com/jiquan123/I2IQA'):
        download_dataset('pku_i2iqa', tmp_path)
    with pytest.raises(DownloadError, match='no public mirror is known for .aigciqa2023.*wangjiarui153'):
        download_dataset('aigciqa2023', tmp_path)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(DownloadError, match='AGIQA-3K.zip.*chaofengc/IQA-PyTorch-Datasets.*Offline'):
        download_dataset('agiqa3k', tmp_path, cache_dir=str(tmp_path / 'cache'))


def test_download_verifies_checksum_and_unpacks(tmp_path, monkeypatch):
    """The hub is replaced by a local file (no network here); the rest runs for real."""
    import hashlib
    import zipfile

    import huggingface_hub

    from pyiqa_agiqa.data import download

    archive = tmp_path / 'AGIQA-3K.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr('AGIQA-3K/a.jpg', b'x')
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', lambda *a, **k: str(archive))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(download.DownloadError, match=f'SHA-256 {digest} differs from the recorded 96401d1f'):
        download.download_dataset('agiqa3k', tmp_path / 'datasets')  # the recorded digest of the real archive
    assert not (tmp_path / 'datasets').exists()
    monkeypatch.setitem(download.MIRRORS, 'agiqa3k', dict(download.MIRRORS['agiqa3k'], sha256=digest))
    out = download.download_dataset('agiqa3k', tmp_path / 'datasets')
    assert (out / 'AGIQA-3K' / 'a.jpg').read_bytes() == b'x'
