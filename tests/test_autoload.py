"""The hook that adds the plugin's metrics to pyiqa in any process (pyiqa_agiqa_autoload.py and the
.pth file setup.py puts in the wheel), on real installations: pip installs the wheel, and the
project in editable mode, into fresh virtual environments whose interpreters never import the
plugin by hand (PYTHONPATH dropped: the installed copy runs). pyiqa's own command runs there
on a folder of generated files."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conftest import REPO, console_script, rounding

PTH = 'pyiqa_agiqa-autoload.pth'
SOURCES = shutil.ignore_patterns('.git', 'build', 'dist', '*.egg-info', '__pycache__', 'experiments', 'tb_logger*',
                                 'results', '.pytest_cache', 'agiqa_demo', '.whl', '*.pth', '*.state')
TINY = "pretrained=False, clip_model='AGIQA-Tiny-ViT', min_side=64, stride=8, device='cpu'"
PROMPTS = {'a1111.png': 'a lighthouse at dusk', 'txt.png': 'a red fox in the snow', 'caption.png': 'an owl'}


class Installed:
    """A virtual environment with the plugin installed by pip (``kind``: wheel or editable),
    which sees this interpreter's site-packages (torch, pyiqa) through a .pth of paths."""

    def __init__(self, root: Path, kind: str):
        self.root, self.kind, self.src = root, kind, root / 'src'
        shutil.copytree(REPO, self.src, ignore=SOURCES)
        subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(root / 'venv')], check=True)
        self.python = root / 'venv' / ('Scripts' if os.name == 'nt' else 'bin') / 'python'
        self.site = Path(self.run('import sysconfig; print(sysconfig.get_paths()["purelib"])').stdout.strip())
        outer = [p for p in sys.path if p.endswith(('site-packages', 'dist-packages')) and os.path.isdir(p)]
        (self.site / '_outer_site.pth').write_text('\n'.join(outer) + '\n')
        self.pip_install()

    def pip_install(self):
        pip = [str(self.python), '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed', '-q']
        if self.kind == 'editable':
            self.check([*pip, '--no-build-isolation', '-e', str(self.src)])
            return
        self.check([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index', '--no-build-isolation', '-q',
                    '-w', str(self.root / 'dist'), str(self.src)])
        self.check([*pip, *map(str, (self.root / 'dist').glob('*.whl'))])

    def environ(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYIQA_AGIQA_AUTOLOAD')}
        return dict(env, **extra)

    def check(self, args):
        result = subprocess.run(args, capture_output=True, text=True, env=self.environ(), cwd=self.root, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]

    def run(self, code: str, *args, **extra) -> subprocess.CompletedProcess:
        """``code`` (or, with ``args``, a script: ``code`` is its path) in the environment's interpreter."""
        argv = [str(self.python), code, *args] if args else [str(self.python), '-c', code]
        return subprocess.run(argv, capture_output=True, text=True, env=self.environ(**extra), cwd=self.root,
                              timeout=600)


def _can_build() -> bool:
    """setuptools >= 64 (editable wheels) that builds wheels (bdist_wheel: setuptools >= 70.1 or ``wheel``)."""
    import setuptools

    return (int(setuptools.__version__.split('.')[0]) >= 64
            and bool(importlib.util.find_spec('setuptools.command.bdist_wheel') or importlib.util.find_spec('wheel')))


@pytest.fixture(scope='module', params=['wheel', 'editable'])
def installed(request, tmp_path_factory):
    if not _can_build():
        pytest.skip('building the wheel offline needs setuptools >= 64 with bdist_wheel here')
    return Installed(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture
def generated(tmp_path):
    """A folder of generated PNGs: A1111 metadata, a .txt caption, a .caption caption (PROMPTS)."""
    rng = np.random.default_rng(0)
    for name in PROMPTS:
        info = PngInfo()
        if name == 'a1111.png':
            info.add_text('parameters', f'{PROMPTS[name]}\nNegative prompt: blurry\nSteps: 20, Seed: 1')
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / name, pnginfo=info)
    (tmp_path / 'txt.txt').write_text(PROMPTS['txt.png'] + '\n')
    (tmp_path / 'caption.caption').write_text(PROMPTS['caption.png'])
    return tmp_path


def test_pip_installs_one_import_line_next_to_the_package(installed):
    lines = (installed.site / PTH).read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith('import ') and 'pyiqa_agiqa_autoload.install()' in lines[0]


def test_create_metric_in_an_interpreter_that_never_imports_the_plugin(installed, generated):
    code = (
        "import json, sys\n"
        "assert 'pyiqa_agiqa' not in sys.modules\n"
        "import pyiqa\n"
        f"metric = pyiqa.create_metric('ipce', {TINY})\n"
        f"score = metric({str(generated / 'txt.png')!r})\n"
        "print(json.dumps([pyiqa.list_models(filter='ipce*'), sys.modules['pyiqa_agiqa'].__file__, score.item()]))\n"
    )
    result = installed.run(code)
    assert result.returncode == 0, result.stderr
    names, plugin, score = json.loads(result.stdout.splitlines()[-1])
    assert names == ['ipce', 'ipce_l14'] and 0 <= score <= 5
    assert Path(plugin).is_relative_to(installed.site if installed.kind == 'wheel' else installed.src)


def test_interpreter_start_costs_one_small_module_and_the_off_switch(installed):
    show = ("import json, sys; print(json.dumps([sorted(sys.modules), "
            "[getattr(f, '__name__', type(f).__name__) for f in sys.meta_path]]))")
    on, off = installed.run(show), installed.run(show, PYIQA_AGIQA_AUTOLOAD='0')
    (on_modules, on_finders), (off_modules, off_finders) = json.loads(on.stdout), json.loads(off.stdout)
    assert set(on_modules) - set(off_modules) == {'pyiqa_agiqa_autoload'}
    assert on_finders.index('PyiqaImportHook') < on_finders.index('PathFinder') and 'PyiqaImportHook' not in off_finders
    code = ("import sys, pyiqa\n"
            "print('pyiqa_agiqa' in sys.modules, 'ipce' in pyiqa.list_models())\n"
            "import pyiqa_agiqa\n"
            "print('ipce' in pyiqa.list_models())\n")
    result = installed.run(code, PYIQA_AGIQA_AUTOLOAD='0')
    assert result.stdout.split() == ['False', 'False', 'True'], result.stderr


def test_a_broken_plugin_is_a_warning_and_pyiqa_works(installed, tmp_path):
    broken = tmp_path / 'pyiqa_agiqa'
    broken.mkdir()
    (broken / '__init__.py').write_text("raise ImportError('broken on purpose')\n")
    code = "import pyiqa\nprint(pyiqa.create_metric('psnr', device='cpu').metric_name, 'ipce' in pyiqa.list_models())"
    result = installed.run(code, PYTHONPATH=str(tmp_path))
    assert result.returncode == 0 and result.stdout.split() == ['psnr', 'False'], result.stderr
    assert ('RuntimeWarning: pyiqa-agiqa: its metrics were not added to pyiqa (ImportError: broken on purpose); '
            'fix or reinstall pyiqa-agiqa, or set PYIQA_AGIQA_AUTOLOAD=0 to turn this hook off') in result.stderr
    assert 'Traceback' not in result.stderr


def test_a_missing_hook_module_is_one_line_at_start(installed, tmp_path):
    """The .pth of a half-removed installation (its module gone) must not stop an interpreter."""
    shutil.copy(installed.site / PTH, tmp_path / PTH)
    code = f"import site; site.addsitedir({str(tmp_path)!r}); print('started')"
    result = installed.run('-S', '-c', code)  # -S: no site-packages, so no pyiqa_agiqa_autoload
    assert result.returncode == 0 and result.stdout.strip() == 'started', result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyiqa-agiqa: its pyiqa hook is off (ModuleNotFoundError("), lines


def _random_clip_in_hub_cache(cache: Path) -> Path:
    """Random ViT-B-32-quickgelu weights where open_clip's ``openai`` tag is looked for in the
    Hugging Face cache (offline): pyiqa's command creates metrics with their defaults."""
    import open_clip
    import torch
    from open_clip.pretrained import get_pretrained_cfg
    from safetensors.torch import save_file

    repo = get_pretrained_cfg('ViT-B-32-quickgelu', 'openai')['hf_hub'].strip('/')
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = '0' * 40
    (folder / 'refs').mkdir(parents=True)
    (folder / 'refs' / 'main').write_text(commit)
    path = folder / 'snapshots' / commit / 'open_clip_model.safetensors'
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    model = open_clip.create_model('ViT-B-32-quickgelu', pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize('installed', ['editable'], indirect=True)
def test_pyiqa_command_scores_a_folder_of_generated_files(installed, generated, tmp_path):
    """pyiqa's own console script, run by the environment's interpreter, on a folder: every
    image is scored with its own prompt (A1111 metadata, .txt, .caption), as in Python."""
    import pyiqa
    import torch

    import pyiqa_agiqa  # noqa: F401  (this process may run without the hook)

    weights = _random_clip_in_hub_cache(tmp_path / 'hub')
    result = installed.run(console_script('pyiqa'), 'cianet_consistency', '-t', str(generated), '-v', '--device',
                           'cpu', HF_HUB_CACHE=str(tmp_path / 'hub'), HF_HUB_OFFLINE='1')
    assert result.returncode == 0, result.stderr[-3000:]
    scores = {Path(path).name: float(value) for path, value in re.findall(r"'([^']+\.png)': ([-0-9.e+]+)",
                                                                          result.stdout)}
    assert set(scores) == set(PROMPTS), result.stdout
    metric = pyiqa.create_metric('cianet_consistency', clip_pretrained=str(weights), device='cpu')
    for name, prompt in PROMPTS.items():
        expected = metric(str(generated / name), prompt=prompt).item()
        assert abs(scores[name] - expected) <= 2 * rounding(torch.float32, scale=100), (name, scores[name], expected)
