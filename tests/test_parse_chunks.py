"""Replay's chunks(): pieces that end on a line terminator, together exactly the file."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.replay import chunks


def pieces(tmp_path, data: bytes, size: int) -> list[bytes]:
    path = tmp_path / "log"
    path.write_bytes(data)
    return list(chunks(str(path), size))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b.translate(bytes.maketrans(b"\x00\x01\x02", b"\n\r{"))),
       st.integers(1, 40))
def test_pieces_end_on_terminators_and_join_to_the_file(tmp_path_factory, data, size):
    got = pieces(tmp_path_factory.mktemp("c"), data, size)
    terminated = data if not data or data.endswith((b"\n", b"\r")) else data + b"\n"
    assert b"".join(got) == terminated
    assert all(p.endswith((b"\n", b"\r")) for p in got)
    assert all(len(p) >= size for p in got[:-1])  # each piece runs at least to the size mark


def test_crlf_stays_whole_and_long_lines_span_several_peeks(tmp_path):
    long = b"x" * 200_000  # longer than a peek: the end of the line is looked for further on
    data = b"ab\r\ncd\r\n" + long + b"\nlast"
    got = pieces(tmp_path, data, 3)
    assert got == [b"ab\r\n", b"cd\r\n", long + b"\n", b"last\n"]


def test_empty_file(tmp_path):
    assert pieces(tmp_path, b"", 8) == []


def test_crlf_split_by_a_peek_stays_whole(tmp_path, monkeypatch):
    monkeypatch.setattr("alertd.replay._PEEK", 4)
    assert pieces(tmp_path, b"abcdefg\r\nhi\n", 5) == [b"abcdefg\r\n", b"hi\n"]
