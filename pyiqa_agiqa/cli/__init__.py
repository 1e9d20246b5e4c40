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


EXIT_ERROR = 2  # an error of the plugin's kinds (options, prompts, weights, metadata, images, training)


def _one_line_errors():
    """Error types printed as one line (their messages name the problem and the fix); set
    PYIQA_AGIQA_TRACEBACK=1 to see the traceback instead."""
    from pyiqa_agiqa.errors import AGIQAError

    if os.environ.get('PYIQA_AGIQA_TRACEBACK'):
        return ()
    # AGIQAError: every error type of the plugin; ValueError: a wrong value met by a library
    # (yaml, pandas) on the user's input; the OSError subclasses: missing / existing / unreadable files
    return (AGIQAError, ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError)


def _run(command, *args) -> int:
    try:
        return command(*args)
    except _one_line_errors() as error:
        from pyiqa_agiqa.training.distributed import rank

        prefix = f'[rank {rank()}] ' if rank() else ''
        print(f'{prefix}error: {one_line(error)}', file=sys.stderr, flush=True)
        return EXIT_ERROR


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] in ('train', 'train-nsplits'):
        return _run(cmd_train, argparse.Namespace(command=argv[0]), argv[1:])
    args = parser.parse_args(argv)
    commands = {'score': cmd_score, 'benchmark': cmd_benchmark, 'demo': cmd_demo, 'prepare': cmd_prepare,
                'download': cmd_download, 'convert-weights': cmd_convert_weights, 'export': cmd_export,
                'push': cmd_push, 'convert': cmd_convert}
    return _run(commands[args.command], args)


if __name__ == '__main__':
    sys.exit(main())
