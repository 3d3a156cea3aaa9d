"""Reading files at the edge: text columns, lenient bytes, clear table-level errors, atomic writes."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from pipeline.errors import DataContractError
from pipeline.io import (
    atomic_write_parquet,
    csv_header,
    detect_format,
    iter_csv_text,
    iter_parquet,
    read_csv_text,
    read_table,
)


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
        ("dup.csv", b"a,a\n1,2\n", "duplicated column name(s) in the header: a"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "different number of fields"),
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
