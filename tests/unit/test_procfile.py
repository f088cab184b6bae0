"""The Procfile parser: what it accepts, and errors that name the line."""

from __future__ import annotations

import pytest

from paas.procfile import ProcfileError, parse


def test_parses_types_in_order_skipping_blanks_and_comments() -> None:
    text = "# comment\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker:python w.py\n"
    assert parse(text) == {"web": "gunicorn app:app --bind 0.0.0.0:$PORT", "worker": "python w.py"}
    assert list(parse(text)) == ["web", "worker"]


def test_keeps_colons_in_commands_and_trims_whitespace() -> None:
    assert parse("  web:   python -c 'print(1)' a:b  \r\n") == {"web": "python -c 'print(1)' a:b"}


def test_the_example_at_the_top_of_the_repository_parses() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "Procfile.example"
    assert "web" in parse(example.read_text())


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("web: a\nthis is junk\n", 2),
        ("\n\nweb a\n", 3),
        ("we b: a\n", 1),
        ("web:\n", 1),
    ],
)
def test_junk_lines_are_rejected_with_their_number(text: str, line: int) -> None:
    with pytest.raises(ProcfileError) as err:
        parse(text)
    assert f"line {line}:" in err.value.message


def test_duplicates_name_both_lines() -> None:
    with pytest.raises(ProcfileError) as err:
        parse("web: a\nworker: b\nweb: c\n")
    assert "line 3" in err.value.message and "line 1" in err.value.message
    assert err.value.to_dict()["id"] == "invalid_procfile"


def test_empty_procfile_has_no_types() -> None:
    assert parse("# nothing yet\n") == {}
