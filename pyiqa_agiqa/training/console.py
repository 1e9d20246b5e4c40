"""What a training run shows on the console: pyiqa's log lines (the default, as pyiqa's own
loop), or a progress bar (``TrainingRun(..., progress=True)``, used by the demo): one tqdm bar
over the run's iterations with the epoch, the losses and the last validation figure of the
selection set. With the bar, pyiqa's console lines below WARNING are held back for the run;
the log file under ``experiments/NAME/`` still gets every line."""

from __future__ import annotations

import logging
from typing import List, Optional, Tuple

from tqdm import tqdm


def hold_back_console(logger: logging.Logger) -> List[Tuple[logging.Handler, int]]:
    """Raise ``logger``'s console handlers to WARNING (its file handlers keep every line); returns
    what :func:`restore_console` needs."""
    held = [(h, h.level) for h in logger.handlers if not isinstance(h, logging.FileHandler)]
    for handler, _ in held:
        handler.setLevel(logging.WARNING)
    return held


def restore_console(held: List[Tuple[logging.Handler, int]]) -> None:
    for handler, level in held:
        handler.setLevel(level)


class Progress:
    """A bar over iterations ``start..total``; a no-op when ``enabled`` is False."""

    def __init__(self, total: int, start: int = 0, desc: str = 'training', enabled: bool = True):
        self.bar: Optional[tqdm] = tqdm(total=total, initial=start, desc=desc, unit='it',
                                        dynamic_ncols=True) if enabled else None

    def update(self, iteration: int, model, epoch: int) -> None:
        """Move the bar to ``iteration`` and show the epoch, losses and last selection figure."""
        if self.bar is None:
            return
        postfix = {'epoch': epoch + 1}
        postfix.update({k: f'{v:.3g}' for k, v in (getattr(model, 'log_dict', None) or {}).items()})
        history = getattr(model, '_selection_history', None)
        if history:
            postfix[f"val {getattr(model, 'key_metric', '')}"] = f'{history[-1][1]:.4f}'
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(iteration - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
