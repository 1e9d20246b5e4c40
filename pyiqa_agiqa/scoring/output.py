"""Where the local engine's scores go: a CSV or JSONL file written as rows are scored (flushed
per batch), read back for ``--resume`` by the rules of :mod:`.contract`; CSV text cells that a
spreadsheet would run as a formula are neutralised.

A kill during a write, or a full disk, can leave the file's last line incomplete (a torn
line). On ``--resume`` a last line that is not a complete row is dropped and its image scored
again, with a note naming the file and line; a damaged line in the middle of the file is an
error naming both (it cannot come from a kill: someone edited the file)."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from typing import List, Sequence

import pandas as pd

from .contract import (TEXT_COLUMNS, ScoringInputError, check_same_metrics, finite_score, is_done, metric_columns,
                       output_columns, row_key)
from .lock import hold_output


# ----- spreadsheet-safe text -----
FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')


def spreadsheet_safe(text: str) -> str:
    """A CSV cell that no spreadsheet program runs as a formula (OWASP's CSV injection advice):
    text beginning with ``= + - @``, a tab or a carriage return gets a leading ``'``, which
    spreadsheets show as text and hide. Text already beginning with ``'`` gets one more, so that
    :func:`from_spreadsheet_safe` always gives the original back."""
    return "'" + text if isinstance(text, str) and text[:1] in FORMULA_STARTS + ("'",) else text


def from_spreadsheet_safe(text: str) -> str:
    """The original text of a cell written by :func:`spreadsheet_safe`."""
    return text[1:] if isinstance(text, str) and text[:1] == "'" else text


def safe_csv_record(record: dict) -> dict:
    """``record`` with its text columns made :func:`spreadsheet_safe` (numbers are left alone)."""
    return {k: spreadsheet_safe(v) if k in TEXT_COLUMNS else v for k, v in record.items()}


def read_scores(path: str) -> pd.DataFrame:
    """A CSV or JSONL output of the scorer as a table, with the original text of every cell
    (``pd.read_csv`` would show the ``'`` of :func:`spreadsheet_safe`)."""
    if path.endswith(('.jsonl', '.json')):
        return pd.read_json(path, lines=True, dtype={c: str for c in TEXT_COLUMNS})
    table = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False)
    for column in TEXT_COLUMNS:
        if column in table:
            table[column] = table[column].map(from_spreadsheet_safe)
    return table


# ----- reading an output back, torn lines included -----
@dataclass
class StoredOutput:
    """The rows of an existing output: its ``columns``, complete ``records`` (original text),
    and ``notes`` (a torn last line that was dropped)."""
    columns: List[str]
    records: List[dict] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def _damaged(path: str, line: int, what: str) -> ScoringInputError:
    return ScoringInputError(f'{path} line {line}: {what}, in the middle of the file (not a torn last line from a '
                             'kill): repair or delete that line, or pass --overwrite to score everything again')


def _torn_note(path: str, line: int) -> str:
    return f'{path} line {line}: an incomplete last row (cut during a write); its image is scored again'


def _csv_records(path: str, text: str) -> StoredOutput:
    """CSV rows with the line each starts on; the writer ends every row with CRLF, so a last row
    without a line end, with the wrong number of cells or with an open quote is torn."""
    reader = csv.reader(io.StringIO(text, newline=''), strict=True)
    parsed, line = [], 1
    try:
        for cells in reader:
            parsed.append((line, cells))
            line = reader.line_num + 1
    except csv.Error:  # strict: an open quote at the end of the file, or a malformed cell
        parsed.append((line, None))
    if not parsed or parsed[0][1] is None:
        raise ScoringInputError(f'{path} line 1: no header row; pass --overwrite to score everything again')
    columns = parsed[0][1]
    out = StoredOutput(columns)
    for i, (line, cells) in enumerate(parsed[1:], start=2):
        last = i == len(parsed)
        complete = cells is not None and len(cells) == len(columns) and (not last or text.endswith('\n'))
        if not complete:
            if last:
                out.notes.append(_torn_note(path, line))
                break
            found = 'a malformed row' if cells is None else f'{len(cells)} cells where the header has {len(columns)}'
            raise _damaged(path, line, found)
        out.records.append({k: from_spreadsheet_safe(v) if k in TEXT_COLUMNS else v for k, v in zip(columns, cells)})
    return out


def _jsonl_records(path: str, text: str, columns: Sequence[str]) -> StoredOutput:
    """JSONL rows, one per line; a last line that is not a whole JSON object of the output's
    columns (or has no line end) is torn."""
    lines = text.split('\n')
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    out = StoredOutput(list(columns))
    for k, (n, line) in enumerate(numbered):
        last = k == len(numbered) - 1
        try:
            record = json.loads(line)
            whole = isinstance(record, dict) and (not last or text.endswith('\n'))
        except ValueError:
            record, whole = None, False
        if not whole:
            if last:
                out.notes.append(_torn_note(path, n))
                break
            raise _damaged(path, n, 'not a JSON object')
        if k == 0:
            out.columns = list(record)
        elif list(record) != out.columns:
            if last:
                out.notes.append(_torn_note(path, n))
                break
            raise _damaged(path, n, f'the keys {list(record)} differ from the first row\'s {out.columns}')
        out.records.append(record)
    return out


def read_output(path: str, columns: Sequence[str]) -> StoredOutput:
    """An existing CSV / JSONL output read back by the rules above (``columns``: the columns this
    run writes, used when a JSONL file holds no complete row)."""
    with open(path, newline='') as handle:
        text = handle.read()
    if path.endswith(('.jsonl', '.json')):
        return _jsonl_records(path, text, columns)
    return _csv_records(path, text)


def _check_damage_in_scores(path: str, stored: StoredOutput) -> None:
    """A row without an error whose score cell is not a number was not written by the scorer."""
    metrics = metric_columns(stored.columns)
    for record in stored.records:
        if not record.get('error'):
            bad = [m for m in metrics if record.get(m) not in ('', None) and finite_score(record.get(m)) is None
                   and str(record.get(m)).lower() not in ('nan', 'inf', '-inf')]
            if bad:
                raise ScoringInputError(f"{path}: the row of {record.get('image')} holds {bad[0]}="
                                        f"{record.get(bad[0])!r}, not a number: repair that row, or pass "
                                        '--overwrite to score everything again')


# ----- writing -----
class ResultWriter:
    """Appends result rows to a CSV or JSONL file (by suffix), flushed after every write. In CSV
    the text columns are written :func:`spreadsheet_safe` (JSONL keeps the raw text); a resumed
    file is read back with the original text.

    Holds the output's lock (:mod:`.lock`) from creation to :meth:`close`; ``done`` is the set of
    row keys (:func:`.contract.row_key`) already scored in a resumed file; ``notes`` says what
    was found and repaired in it (a torn last line)."""

    def __init__(self, path: str, columns: List[str], overwrite: bool = False, resume: bool = False):
        if overwrite and resume:
            raise ScoringInputError('--overwrite replaces the output, --resume continues it: give one')
        self.path, self.columns = path, list(columns)
        self.jsonl = path.endswith(('.jsonl', '.json'))
        self.done: set = set()
        self.notes: List[str] = []
        self.handle, self.lock = None, None
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if exists and not (overwrite or resume):
            raise ScoringInputError(f'{path} exists; pass --resume to continue it or --overwrite to replace it')
        if os.path.isdir(path):
            raise ScoringInputError(f'{path} is a folder; the local engine writes one .csv or .jsonl file')
        self.lock = hold_output(path)
        self._resumed = exists and resume
        self._kept: List[dict] = []
        try:
            if self._resumed:
                self._read_scored_rows()
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        """Create (or truncate, or rewrite with the rows kept) the file and open it for appending;
        called before the first write, after the models are built, so that a run that fails
        before scoring leaves an existing output as it was and creates none."""
        if self.handle is not None:
            return
        if self._resumed:
            self._rewrite_kept()
        self.handle = self._guard(lambda: open(self.path, 'a' if self._resumed else 'w', newline=''))
        self.writer = None if self.jsonl else csv.DictWriter(self.handle, fieldnames=self.columns)
        if not self._resumed and self.writer:
            self._guard(self.writer.writeheader)
            self._flush()

    def _read_scored_rows(self) -> None:
        """Resume: keep the rows that are done (:func:`.contract.is_done`: their keys are skipped)
        and drop the others (errors, non-finite or missing scores, a torn last line), which are
        scored again (:meth:`start` rewrites the file with the kept rows, atomically)."""
        stored = read_output(self.path, self.columns)
        check_same_metrics(self.path, sorted(metric_columns(stored.columns)), sorted(metric_columns(self.columns)))
        _check_damage_in_scores(self.path, stored)
        self.columns = output_columns(metric_columns(stored.columns))  # same metrics, the file's order
        metrics = metric_columns(self.columns)
        self._kept = [r for r in stored.records if is_done(r, metrics)]
        self.done = {row_key(r['image'], r.get('prompt'), r.get('prompt_source', '')) for r in self._kept}
        self.notes = stored.notes

    def _rewrite_kept(self) -> None:
        from ..weights.io import atomic_write

        def write(tmp):
            with open(tmp, 'w', newline='') as handle:
                if self.jsonl:
                    handle.writelines(json.dumps({c: r.get(c) for c in self.columns}) + '\n' for r in self._kept)
                else:
                    writer = csv.DictWriter(handle, fieldnames=self.columns)
                    writer.writeheader()
                    writer.writerows(safe_csv_record({c: r.get(c) for c in self.columns}) for r in self._kept)
        self._guard(lambda: atomic_write(self.path, write))

    def _guard(self, action):
        """Run a write; a full or read-only disk becomes one line naming the output and the fix."""
        try:
            return action()
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ScoringInputError(f'cannot write {self.path}: {reason}; the rows written before are kept: free '
                                    'space or make it writable, then rerun with --resume') from None

    def _flush(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def write(self, records: List[dict]) -> None:
        self.start()

        def append():
            for record in records:
                if self.jsonl:
                    self.handle.write(json.dumps({c: record.get(c) for c in self.columns}) + '\n')
                else:
                    self.writer.writerow(safe_csv_record({c: record.get(c) for c in self.columns}))
            self._flush()
        self._guard(append)

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:  # the last buffered bytes could not be written: they were flushed per batch
                pass
            self.handle = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
