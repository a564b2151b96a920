"""Which bench case has held-out images, and where: the real case and its variants (real-gentle*, bench/real_case.py)
and the user-style case (bench/user_case.py); the embedded case has none."""

from __future__ import annotations

from pathlib import Path

import real_case
import user_case


def holdout(case: str) -> Path | None:
    if case.startswith("real"):
        return real_case.holdout_yaml()
    return user_case.holdout_yaml() if case == "user" else None
