"""Where scores go: CSV or JSONL written as rows are scored (flushed per batch), read back
for ``--resume``; CSV text cells that a spreadsheet would run as a formula are neutralised."""

from __future__ import annotations

import csv
import json
import os
from typing import List

import pandas as pd

from .rows import ScoringInputError


# ----- output -----
TEXT_COLUMNS = ('image', 'prompt', 'prompt_source', 'error')  # text from files: untrusted
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


class ResultWriter:
    """Appends result rows to a CSV or JSONL file (by suffix), flushed after every write. In CSV
    the text columns are written :func:`spreadsheet_safe` (JSONL keeps the raw text); a resumed
    file is read back with the original text."""

    def __init__(self, path: str, columns: List[str], overwrite: bool = False, resume: bool = False):
        self.path, self.columns = path, list(columns)
        self.jsonl = path.endswith(('.jsonl', '.json'))
        self.done: set = set()
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if exists and not (overwrite or resume):
            raise ScoringInputError(f'{path} exists; pass --resume to continue it or --overwrite to replace it')
        if exists and resume:
            self._keep_scored_rows()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fresh = not (exists and resume)
        self.handle = open(path, 'w' if fresh else 'a', newline='')
        self.writer = None if self.jsonl else csv.DictWriter(self.handle, fieldnames=self.columns)
        if fresh and self.writer:
            self.writer.writeheader()
            self.handle.flush()

    def _read(self) -> List[dict]:
        with open(self.path, newline='') as handle:
            if self.jsonl:
                records = [json.loads(line) for line in handle if line.strip()]  # a torn last line stops here
            else:
                reader = csv.DictReader(handle)
                if reader.fieldnames != self.columns:
                    raise ScoringInputError(f'{self.path} has columns {reader.fieldnames}, this run writes '
                                            f'{self.columns}: resume with the same metrics, or write to another file')
                records = [{k: from_spreadsheet_safe(v) if k in TEXT_COLUMNS else v for k, v in r.items()}
                           for r in reader]
        if records and list(records[0]) != self.columns:
            raise ScoringInputError(f'{self.path} has columns {list(records[0])}, this run writes {self.columns}: '
                                    'resume with the same metrics, or write to another file')
        return records

    def _keep_scored_rows(self) -> None:
        """Resume: keep the rows that were scored (their images are skipped) and drop those
        with an error, whose images are tried again; the file is rewritten atomically."""
        from ..weights.io import atomic_write

        metrics = self.columns[3:-1]
        kept = [r for r in self._read() if not r.get('error') and all(r.get(c) not in (None, '') for c in metrics)]
        self.done = {r['image'] for r in kept}

        def write(tmp):
            with open(tmp, 'w', newline='') as handle:
                if self.jsonl:
                    handle.writelines(json.dumps(r) + '\n' for r in kept)
                else:
                    writer = csv.DictWriter(handle, fieldnames=self.columns)
                    writer.writeheader()
                    writer.writerows(safe_csv_record(r) for r in kept)
        atomic_write(self.path, write)

    def write(self, records: List[dict]) -> None:
        for record in records:
            if self.jsonl:
                self.handle.write(json.dumps(record) + '\n')
            else:
                self.writer.writerow(safe_csv_record(record))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()
