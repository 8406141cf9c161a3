"""The interface each format's writer implements for `tables.TableWriter`."""

from __future__ import annotations

import pandas as pd


class Sink:
    """One output format: write chunks to the temporary file, then close or abort."""

    guarded = False  # some cell or name got a formula guard

    def write(self, df: pd.DataFrame, rows_before: int, *, header: bool) -> None:
        """Append `df`, preceded by the column names if `header` (formats that have one)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        self.close()
