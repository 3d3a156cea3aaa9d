"""Reading files at the edge: text columns, lenient bytes, clear table-level errors, atomic writes."""

from __future__ import annotations

import gzip
import os

import pandas as pd
import pytest

from pipeline.data.io import (
    MALFORMED_RULE,
    MALFORMED_TEXT,
    atomic_write_parquet,
    clean_stale_temps,
    csv_header,
    detect_format,
    iter_csv_text,
    iter_parquet,
    read_csv_text,
    read_csv_with_header,
    read_table,
    record_blocks,
)
from pipeline.errors import DataContractError


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_csv_is_read_as_text_with_nulls(tmp_path):
    path = write(tmp_path, "a.csv", b'id,amount,code\n007,5e+05,"x"\n008,,NA\n')
    df = read_csv_text(path)
    assert df["id"].tolist() == ["007", "008"]  # leading zeros survive: nothing is inferred
    assert df["amount"].tolist()[0] == "5e+05" and pd.isna(df["amount"].tolist()[1])
    assert df["code"].tolist()[0] == "x" and pd.isna(df["code"].tolist()[1])


def test_gzip_is_detected_from_the_bytes_not_the_name(tmp_path):
    path = write(tmp_path, "a.csv", gzip.compress(b"a,b\n1,2\n"))
    assert read_table(path).to_dict("records") == [{"a": "1", "b": "2"}]


def test_bom_is_stripped_from_the_header(tmp_path):
    path = write(tmp_path, "a.csv", b"\xef\xbb\xbfapplicant_id,b\n1,2\n")
    assert csv_header(path) == ["applicant_id", "b"]
    assert list(read_csv_text(path).columns) == ["applicant_id", "b"]


def test_invalid_utf8_becomes_replacement_characters_not_a_failed_read(tmp_path):
    path = write(tmp_path, "a.csv", b"a,b\n1,caf\xe9\n2,ok\n")
    df = read_csv_text(path)
    assert df["b"].tolist() == ["caf\ufffd", "ok"]


def test_declared_encoding_is_honoured(tmp_path):
    path = write(tmp_path, "a.csv", "a,b\n1,café\n".encode("latin-1"))
    assert read_csv_text(path, encoding="latin-1")["b"].tolist() == ["café"]


def test_a_very_long_cell_is_read(tmp_path):
    path = write(tmp_path, "a.csv", b"a,b\n1," + b"y" * 6_000_000 + b"\n2,z\n")
    df = read_csv_text(path)
    assert len(df) == 2 and len(df["b"].iloc[0]) == 6_000_000


def test_a_very_wide_header_is_read_whole(tmp_path):
    names = [f"column_with_a_long_name_{i}" for i in range(5000)]  # header > 64 KiB
    path = write(tmp_path, "a.csv", (",".join(names) + "\n" + ",".join("1" * 5000) + "\n").encode())
    assert csv_header(path) == names
    df = read_csv_text(path)
    assert df.shape == (1, 5000) and (df.iloc[0] == "1").all()


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("empty.csv", b"", "file is empty (0 bytes)"),
        ("blank.csv", b"   \n", "file is empty (no header line)"),
        ("trunc.csv.gz", gzip.compress(b"a,b\n" + b"1,2\n" * 50_000)[:-10], "truncated or corrupt"),
    ],
)
def test_unusable_csv_raises_naming_the_file(tmp_path, name, data, needle):
    path = write(tmp_path, name, data)
    with pytest.raises(DataContractError) as err:
        read_table(path)
    assert str(err.value).startswith(str(path)) and needle in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataContractError, match="input file not found"):
        read_table(tmp_path / "no.csv")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataContractError, match="is a folder"):
        read_table(tmp_path / "d.csv")


def test_iter_csv_text_streams_every_row_once(tmp_path):
    rows = "".join(f"{i},x{i}\n" for i in range(20_000))
    path = write(tmp_path, "a.csv.gz", gzip.compress(("id,v\n" + rows).encode()))
    chunks = list(iter_csv_text(path, chunk_bytes=1 << 16))
    assert len(chunks) > 1
    ids = pd.concat(chunks)["id"].astype(int).tolist()
    assert ids == list(range(20_000))


def test_parquet_keeps_types_and_streams(tmp_path):
    df = pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": ["x", "y", None]})
    path = atomic_write_parquet(df, tmp_path / "t.parquet")
    assert read_table(path)["a"].tolist() == [1.5, 2.5, 3.5]
    assert [len(c) for c in iter_parquet(path, 2)] == [2, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temporary file left


def test_detect_format():
    assert detect_format("x.csv.gz") == "csv" and detect_format("x.parquet") == "parquet"
    assert detect_format("x.bin", "csv") == "csv"
    with pytest.raises(DataContractError, match="cannot tell the format"):
        detect_format("x.xlsx")


def test_duplicated_and_blank_header_names_are_made_unique_and_reported(tmp_path):
    path = write(tmp_path, "dup.csv", b",a,a\n0,1,2\n")
    df, header = read_csv_with_header(path)
    assert list(df.columns) == ["Unnamed: 0", "a", "a.1"] and df.iloc[0].tolist() == ["0", "1", "2"]
    assert header.written == ["", "a", "a"]
    assert header.report == {"renamed": {0: "Unnamed: 0", 2: "a.1"}, "duplicates": {"a": [1, 2]}}


def rows_and_marks(df: pd.DataFrame) -> list:
    """Each row as its first cell, or (rule, raw text) for a malformed line."""
    out = []
    for _, row in df.iterrows():
        bad = MALFORMED_RULE in df.columns and isinstance(row[MALFORMED_RULE], str)
        out.append((row[MALFORMED_RULE], row[MALFORMED_TEXT]) if bad else row.iloc[0])
    return out


MALFORMED_CASES = [
    ("short_line", b"a,b,c\n1,2,3\n4,5\n7,8,9\n", ["1", ("malformed_line: expected 3 fields, got 2", "4,5"), "7"]),
    (
        "long_line",
        b"a,b,c\n1,2,3\n4,5,6,7\n7,8,9\n",
        ["1", ("malformed_line: expected 3 fields, got 4", "4,5,6,7"), "7"],
    ),
    (
        "unclosed_quote_mid",
        b'a,b,c\n1,2,3\n4,"5,6\n7,8,9\n10,11,12\n',
        ["1", ("malformed_line: unclosed quote", '4,"5,6'), "7", "10"],
    ),
    ("unclosed_quote_last", b'a,b,c\n1,2,3\n10,11,"12\n', ["1", ("malformed_line: unclosed quote", '10,11,"12')]),
    ("quoted_newline", b'a,b,c\n"x\ny",2,3\n4,5,6\n', ["x\ny", "4"]),
    (
        "two_stray_quotes_do_not_swallow_the_lines_between",
        b'a,b,c\n1,2,3\n4,"5,6\n7,8,9\n10,"11,12\n13,14,15\n',
        ["1", ("malformed_line: unclosed quote", '4,"5,6'), "7", ("malformed_line: unclosed quote", '10,"11,12'), "13"],
    ),
    ("crlf", b"a,b,c\r\n1,2,3\r\n4,5,6\r\n", ["1", "4"]),
    ("cr_only", b"a,b,c\r1,2,3\r4,5,6\r", ["1", "4"]),
    ("cr_only_quoted_cr", b'a,b,c\r"x\ry",2,3\r4,5\r', ["x\ry", ("malformed_line: expected 3 fields, got 2", "4,5")]),
    ("inch_mark_is_text", b'a,b,c\n1,5" x,3\n4,5,6\n', ["1", "4"]),
    (
        "invalid_utf8_in_a_bad_line",
        b"a,b,c\n1,\xff,3,4\n5,6,7\n",
        [("malformed_line: expected 3 fields, got 4", "1,\ufffd,3,4"), "5"],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in MALFORMED_CASES], ids=[c[0] for c in MALFORMED_CASES])
def test_malformed_lines_become_marked_rows_and_both_readers_agree(tmp_path, data, expected):
    path = write(tmp_path, "m.csv", data)
    whole = read_csv_text(path)
    assert rows_and_marks(whole) == expected
    for chunk_bytes in (1, 5, 1 << 20):  # blocks cut at every possible place, and one block
        streamed = pd.concat(list(iter_csv_text(path, chunk_bytes)), ignore_index=True)
        assert rows_and_marks(streamed) == expected, chunk_bytes


def test_a_malformed_line_keeps_the_row_numbers_after_it(tmp_path):
    lines = ["id,v"] + [f"{i},x" for i in range(1000)]
    lines[501] = "500"  # data row 501 lost a field
    path = write(tmp_path, "a.csv", ("\n".join(lines) + "\n").encode())
    df = read_csv_text(path)
    assert len(df) == 1000
    assert df[MALFORMED_RULE].notna().sum() == 1 and df[MALFORMED_TEXT].iloc[500] == "500"
    assert df["id"].iloc[501] == "501" and df["id"].iloc[499] == "499"


def test_an_unclosed_quote_does_not_swallow_the_file_or_memory():
    """Past the record limit the open quote's line is malformed and reading resumes at the next line."""
    chunks = [b'1,"open\n'] + [b"2,ok\n" * 100] * 5
    blocks = list(record_blocks(iter(chunks), ",", limit=300))
    assert blocks[0].rule == "unclosed quote" and blocks[0].text == '1,"open'
    assert b"".join(b for b in blocks[1:] if isinstance(b, bytes)).count(b"2,ok") == 500


def test_long_malformed_line_text_is_cut(tmp_path):
    path = write(tmp_path, "a.csv", b"a,b\n" + b"x" * 5000 + b"\n1,2\n")
    text = read_csv_text(path)[MALFORMED_TEXT].iloc[0]
    assert text.startswith("x" * 200) and text.endswith("...(5000 chars)")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"BZh91AY&SY" + b"\x00" * 20, "compressed as bz2; decompress it or use gzip"),
        (b"\xfd7zXZ\x00\x00" + b"\x00" * 20, "compressed as xz"),
        (b"PK\x03\x04" + b"\x00" * 20, "compressed as zip"),
        ("a,b\n1,2\n".encode("utf-16"), "UTF-16 encoded (byte-order mark ff fe)"),
        ("a,b\n1,2\n".encode("utf-16-le"), "NUL bytes"),
        (gzip.compress("a,b\n1,2\n".encode("utf-16")), "UTF-16 encoded"),
    ],
    ids=["bz2", "xz", "zip", "utf16_bom", "utf16_no_bom", "gzipped_utf16"],
)
def test_encoding_and_compression_are_named(tmp_path, data, needle):
    path = write(tmp_path, "a.csv", data)
    with pytest.raises(DataContractError) as err:
        read_table(path)
    assert str(err.value).startswith(str(path)) and needle in str(err.value)
    assert "Expected" not in str(err.value)


def test_declared_utf16_is_transcoded_and_streams(tmp_path):
    rows = "".join(f"{i},café{i}\n" for i in range(3000))
    path = write(tmp_path, "a.csv", ("id,v\n" + rows).encode("utf-16"))
    whole = read_csv_text(path, encoding="utf-16")
    streamed = pd.concat(list(iter_csv_text(path, 777, encoding="utf-16")), ignore_index=True)
    assert whole["v"].tolist()[:2] == ["café0", "café1"] and len(whole) == 3000
    pd.testing.assert_frame_equal(whole, streamed)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = write(tmp_path, f".t.parquet.tmp-{pid}", b"junk")
    mine = write(tmp_path, f".t.parquet.tmp-{os.getpid()}", b"mine")
    live = write(tmp_path, f".t.parquet.tmp-{os.getppid()}", b"someone else's, still running")
    assert clean_stale_temps(tmp_path / "t.parquet") == [stale]
    assert not stale.exists() and mine.exists() and live.exists()
