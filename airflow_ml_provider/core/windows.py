"""Train and eval windows: the eval window is the most recent days before the logical date, never trained on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Windows:
    """``[train_start, eval_start)`` is trained on, ``[eval_start, end)`` is evaluated on."""

    train_start: datetime
    eval_start: datetime
    end: datetime

    @classmethod
    def ending_at(cls, end: datetime, train_days: int, eval_days: int) -> Windows:
        eval_start = end - timedelta(days=eval_days)
        return cls(train_start=eval_start - timedelta(days=train_days), eval_start=eval_start, end=end)

    def to_dict(self) -> dict[str, str]:
        return {
            k: v.isoformat()
            for k, v in (("train_start", self.train_start), ("eval_start", self.eval_start), ("end", self.end))
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Windows:
        return cls(**{k: datetime.fromisoformat(data[k]) for k in ("train_start", "eval_start", "end")})
