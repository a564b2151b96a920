"""Records that cross layers: frozen dataclasses written to the run folder as plain fields and read back by ``of``,
each knowing how it is shown. A field shown in tables carries its title and format in its metadata (``shown``);
fields without a title are kept in the file for people and scripts, not shown."""

from __future__ import annotations

from dataclasses import asdict, field, fields


def shown(title: str, fmt: str = "{}", **kwargs):
    """A field shown in tables: its title and its format (None shows as '-')."""
    return field(metadata={"title": title, "format": fmt}, **kwargs)


class Record:
    def record(self) -> dict:
        """As the run folder holds it."""
        return asdict(self)

    @classmethod
    def of(cls, record: dict):
        """From the run folder (fields it does not know are left out: a later kit may add some)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    @classmethod
    def columns(cls) -> list[tuple[str, str, str]]:
        """(field, title, format) of each field shown in tables, in order."""
        return [(f.name, f.metadata["title"], f.metadata["format"]) for f in fields(cls) if "title" in f.metadata]
