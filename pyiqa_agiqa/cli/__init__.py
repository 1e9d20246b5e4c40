"""``pyiqa-agiqa``: the plugin's command line (``pyiqa_agiqa.cli:main``).

One module per command group (:mod:`.score`, :mod:`.train`, :mod:`.benchmark`, :mod:`.weights`,
:mod:`.data`), imported only when one of its commands runs (``--help`` loads no torch); the
parser in :mod:`.parser`; here: dispatch and the one rule of every command:

- exit status: the ``EXIT_*`` below (0 when all went well);
- standard output carries only results (scores printed without ``--output``, ``benchmark
  --plan``, the demo's report), so that it can be redirected to a file; progress, notes,
  warnings, the closing summary (``N of M images scored``, ``N of M runs finished``, what was
  written where) and errors go to standard error.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from importlib import import_module

from .parser import RENAMED, build_parser
from ..errors import PartlyFailedError, one_line


EXIT_PARTIAL = 1  # the command finished, but some rows (or runs) failed: each is named, the rest is written
EXIT_ERROR = 2  # an error of the plugin's kinds (options, prompts, weights, metadata, images, training, files)
EXIT_INTERNAL = 3  # an unexpected exception: a bug; its traceback is printed
EXIT_INTERRUPTED = 130  # Ctrl-C (what was written so far is kept; scoring and training resume)
COMMANDS = {  # command -> (module of this package, function): imported when the command runs
    'score': ('score', 'cmd_score'), 'compare': ('compare', 'cmd_compare'), 'prompts': ('compare', 'cmd_prompts'),
    'benchmark': ('benchmark', 'cmd_benchmark'), 'demo': ('train', 'cmd_demo'),
    'train': ('train', 'cmd_train'), 'train-nsplits': ('train', 'cmd_train'),
    'prepare': ('data', 'cmd_prepare'), 'download': ('data', 'cmd_download'),
    'export': ('weights', 'cmd_export'), 'push': ('weights', 'cmd_push'),
    'convert-reference': ('weights', 'cmd_convert_reference'), 'convert-pickle': ('weights', 'cmd_convert_pickle'),
}


def _one_line_errors():
    """Error types printed as one line (their messages name the problem and the fix); set
    PYIQA_AGIQA_TRACEBACK=1 to see the traceback instead."""
    from pyiqa_agiqa.errors import AGIQAError

    if os.environ.get('PYIQA_AGIQA_TRACEBACK'):
        return ()
    # AGIQAError: every error type of the plugin; ValueError: a wrong value met by a library
    # (yaml, pandas) on the user's input; OSError: missing / existing / unreadable / unwritable files
    return (AGIQAError, ValueError, OSError)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f'warning: {message}\n'


def _run(command, *args) -> int:
    """Run a command; the exit status says what happened (0, or the EXIT_* above)."""
    import traceback
    import warnings

    from pyiqa_agiqa.training.distributed import rank

    prefix = f'[rank {rank()}] ' if rank() else ''
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return command(*args)
    except PartlyFailedError as error:  # the rest was done and written: not the status of an error
        print(f'{prefix}error: {one_line(error)}', file=sys.stderr, flush=True)
        return EXIT_PARTIAL
    except _one_line_errors() as error:
        print(f'{prefix}error: {one_line(error)}', file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f'{prefix}interrupted: what was written is kept (scoring: --resume; training: --auto_resume)',
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - a bug: the traceback, and a status no other outcome uses
        traceback.print_exc()
        print(f'{prefix}error: internal error ({type(error).__name__}): a bug in pyiqa-agiqa; please report it '
              'with the traceback above', file=sys.stderr, flush=True)
        return EXIT_INTERNAL
    finally:
        warnings.formatwarning = formatwarning


def _command(name: str):
    module, function = COMMANDS[name]
    return getattr(import_module(f'.{module}', __name__), function)


def _renamed(argv: List[str]) -> List[str]:
    """A command's old name (see parser.RENAMED) still works, with a one-line warning."""
    if argv and argv[0] in RENAMED:
        print(f'warning: `pyiqa-agiqa {argv[0]}` is now `pyiqa-agiqa {RENAMED[argv[0]]}`; the old name will be '
              'removed in a later version', file=sys.stderr, flush=True)
        return [RENAMED[argv[0]]] + argv[1:]
    return argv


def main(argv: Optional[List[str]] = None) -> int:
    argv = _renamed(sys.argv[1:] if argv is None else list(argv))
    if argv and argv[0] in ('train', 'train-nsplits'):  # their arguments are pyiqa's, parsed by the training code
        return _run(_command(argv[0]), argparse.Namespace(command=argv[0]), argv[1:])
    args = build_parser().parse_args(argv)
    return _run(_command(args.command), args)


if __name__ == '__main__':
    sys.exit(main())
