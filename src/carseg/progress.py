"""Progress bars for a person at a terminal only: on a log file or a pipe (``bin/demo.sh > demo.log``, CI) a tqdm bar
is thousands of carriage-return redraws, so none is drawn unless stderr, where tqdm writes, is a terminal."""
import sys
from typing import Any

from tqdm import tqdm


def on_terminal() -> bool:
    """Whether progress bars are drawn: stderr is a terminal, not a file or a pipe."""
    return sys.stderr.isatty()


def progress_bar(show: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar (``kwargs`` as tqdm's) drawn on stderr when ``show`` and :func:`on_terminal`; else a silent one."""
    return tqdm(disable=not (show and on_terminal()), **kwargs)
