"""The build step that pyproject.toml cannot declare: ``pyiqa_agiqa-autoload.pth`` at the root of
the wheel and of the editable wheel, so that pip puts it in site-packages next to the package
(both for ``pip install .`` and ``pip install -e .``). Its one line imports
``pyiqa_agiqa_autoload``, the hook that adds the plugin's metrics to pyiqa when pyiqa is
imported (docs/development.md#registration). Metadata is in pyproject.toml.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = 'pyiqa_agiqa-autoload.pth'
# the code the .pth runs: an error here must never stop an interpreter, it is one line on stderr
HOOK = ('try:\n import pyiqa_agiqa_autoload; pyiqa_agiqa_autoload.install()\n'
        'except Exception as e:\n sys.stderr.write("pyiqa-agiqa: its pyiqa hook is off (%r); reinstall pyiqa-agiqa, '
        f'or uninstall it to remove {PTH_NAME}\\n" % (e,))')
# site.py runs a .pth line that starts with "import"; PYIQA_AGIQA_AUTOLOAD=0 skips even the hook's import
PTH_LINE = f"import os, sys; os.environ.get('PYIQA_AGIQA_AUTOLOAD') == '0' or exec({HOOK!r})\n"


class build_py_with_pth(build_py):
    """build_py, plus the .pth file in the wheel's root (``build_lib``; in an editable build,
    the unpacked editable wheel, which setuptools' ``editable_wheel`` gives as ``install_lib``)."""

    def run(self):
        super().run()
        folder = self._pth_folder()
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, PTH_NAME), 'w', encoding='utf-8') as handle:
            handle.write(PTH_LINE)

    def _pth_folder(self):
        if getattr(self, 'editable_mode', False):
            return self.get_finalized_command('install').install_lib
        return self.build_lib

    def get_outputs(self, *args, **kwargs):
        outputs = list(super().get_outputs(*args, **kwargs))
        if not getattr(self, 'editable_mode', False):
            outputs.append(os.path.join(self.build_lib, PTH_NAME))
        return outputs


setup(cmdclass={'build_py': build_py_with_pth})
