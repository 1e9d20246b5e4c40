"""``pyiqa-agiqa``: the plugin's command line (``pyiqa_agiqa.cli:main``).

One module per command group (:mod:`.score`, :mod:`.train`, :mod:`.weights`, :mod:`.data`),
the parser in :mod:`.parser`; here: dispatch, and errors of the plugin's kinds printed as one
line with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .benchmark import cmd_benchmark
from .data import cmd_download, cmd_prepare
from .parser import build_parser
from .score import cmd_score
from .train import cmd_demo, cmd_train
from .weights import cmd_convert, cmd_convert_weights, cmd_export, cmd_push
from ..errors import one_line


EXIT_PARTIAL = 1  # the command finished, but some rows (or runs) failed: each is named, the rest is written
EXIT_ERROR = 2  # an error of the plugin's kinds (options, prompts, weights, metadata, images, training, files)
EXIT_INTERNAL = 3  # an unexpected exception: a bug; its traceback is printed
EXIT_INTERRUPTED = 130  # Ctrl-C (what was written so far is kept; scoring and training resume)
COMMANDS = {'score': cmd_score, 'benchmark': cmd_benchmark, 'demo': cmd_demo, 'prepare': cmd_prepare,
            'download': cmd_download, 'convert-weights': cmd_convert_weights, 'export': cmd_export,
            'push': cmd_push, 'convert': cmd_convert}


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


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] in ('train', 'train-nsplits'):
        return _run(cmd_train, argparse.Namespace(command=argv[0]), argv[1:])
    args = parser.parse_args(argv)
    return _run(COMMANDS[args.command], args)


if __name__ == '__main__':
    sys.exit(main())
