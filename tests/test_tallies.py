"""SeenIds, the batch job's exact repeated-id check across chunks: exact after many run merges, hash
collisions resolved byte by byte, merged runs sorted with each hash beside its id's position, positions
stored as uint32 until they no longer fit, ids kept compact."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import examples
from pipeline.batch import tallies
from pipeline.batch.tallies import SeenIds, _merge_last_two, id_hashes


def stored_ids(seen: SeenIds) -> list[str]:
    """Every id `seen` holds, by position."""
    out: list[str] = []
    for start, batch in zip(seen._starts, seen._batches, strict=True):
        assert start == len(out)
        out.extend(batch.to_pylist())
    return out


def check_runs(seen: SeenIds, hash_fn) -> None:
    """Each run sorted by hash, then by position (equal hashes adjacent, older ids first); each hash is
    the hash of the id stored at its position; the runs together hold every position once."""
    ids = stored_ids(seen)
    assert len(ids) == len(seen)
    by_position = hash_fn(pa.array(ids, pa.string())) if ids else np.empty(0, np.uint64)
    positions = []
    for hashes, pos in seen._runs:
        assert len(hashes) == len(pos) > 0
        assert (hashes[1:] >= hashes[:-1]).all()
        ties = hashes[1:] == hashes[:-1]
        assert (pos[1:][ties] > pos[:-1][ties]).all()
        assert (hashes == by_position[pos]).all()
        positions.append(pos)
    if ids:
        assert np.array_equal(np.sort(np.concatenate(positions)), np.arange(len(ids)))


def id_pool(n: int, rng: np.random.Generator) -> list[str]:
    """Distinct ids of mixed lengths (empty, short, 16 characters as in the job, long, non-ASCII)."""
    shapes = [
        lambda i: f"A{i:015d}",
        lambda i: str(i),
        lambda i: f"cust-{i}-" + "x" * (i % 23),
        lambda i: f"é{i}ü",
    ]
    pool = {"", *(shapes[i % len(shapes)](i) for i in range(n - 1))}
    out = sorted(pool)
    rng.shuffle(out)
    return out


def run_chunks(chunks: list[list[str]], hash_fn, check_every: bool = True) -> list[list[bool]]:
    seen, out = SeenIds(), []
    for chunk in chunks:
        ids = pa.array(chunk, pa.string())
        hashes = hash_fn(ids)
        repeated = seen.repeated(ids, hashes)
        out.append(repeated.tolist())
        seen.add(ids.filter(pa.array(~repeated)), hashes[~repeated])
        if check_every:
            check_runs(seen, hash_fn)
    assert len(seen) == len({i for c in chunks for i in c})
    return out


def set_oracle(chunks: list[list[str]]) -> list[list[bool]]:
    seen: set[str] = set()
    out = []
    for chunk in chunks:
        out.append([i in seen for i in chunk])
        seen |= set(chunk)
    return out


def random_chunks(rng: np.random.Generator, pool: list[str], n_chunks: int, max_size: int) -> list[list[str]]:
    """Chunks of varying size (some empty), ids unique within a chunk as validation leaves them,
    many of them seen in earlier chunks."""
    chunks = []
    for _ in range(n_chunks):
        size = int(rng.integers(0, max_size + 1)) if rng.random() > 0.1 else 0
        picked = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
        chunks.append([pool[i] for i in picked])
    return chunks


@pytest.mark.parametrize(
    ("hash_name", "pool_size", "max_size"),
    [("id_hashes", 6000, 500), ("64 hash values", 1500, 80), ("one hash value", 120, 15)],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_repeated_is_exact_after_many_merges(hash_name, pool_size, max_size, seed):
    hash_fn = {
        "id_hashes": id_hashes,
        "64 hash values": lambda ids: id_hashes(ids) & np.uint64(63),
        "one hash value": lambda ids: np.full(len(ids), 7, np.uint64),
    }[hash_name]
    rng = np.random.default_rng(seed)
    chunks = random_chunks(rng, id_pool(pool_size, rng), n_chunks=60, max_size=max_size)
    expected = set_oracle(chunks)
    assert any(any(c) for c in expected) and not all(all(c) for c in expected if c)  # repeats and new ids
    assert run_chunks(chunks, hash_fn) == expected


def test_many_chunks_of_real_ids_merge_into_few_runs():
    rng = np.random.default_rng(5)
    pool = [f"A{i:015d}" for i in rng.permutation(40_000)]
    chunks = random_chunks(rng, pool, n_chunks=150, max_size=900)
    seen = SeenIds()
    for chunk in chunks:
        ids = pa.array(chunk, pa.string())
        hashes = id_hashes(ids)
        repeated = seen.repeated(ids, hashes)
        held = set(stored_ids(seen))
        assert repeated.tolist() == [i in held for i in chunk]
        seen.add(ids.filter(pa.array(~repeated)), hashes[~repeated])
        assert len(seen._runs) <= 2 * np.log2(len(seen) + 2) + 2  # merged: O(log) runs to search
    check_runs(seen, id_hashes)
    assert {p.dtype for _, p in seen._runs} == {np.dtype(np.uint32)}


@pytest.mark.parametrize(
    ("old_dtype", "new_dtype", "merged"), [("u4", "u4", "u4"), ("u4", "i8", "i8"), ("i8", "u4", "i8")]
)
@pytest.mark.parametrize(("n_old", "n_new"), [(0, 5), (5, 0), (1, 1), (300, 200), (1000, 17), (17, 1000)])
def test_merge_is_a_stable_merge(n_old, n_new, old_dtype, new_dtype, merged):
    rng = np.random.default_rng(n_old * 1000 + n_new)
    top = max(2, (n_old + n_new) // 8)  # many equal hashes, in both runs and across them
    older_h = np.sort(rng.integers(0, top, n_old).astype(np.uint64))
    newer_h = np.sort(rng.integers(0, top, n_new).astype(np.uint64))
    if n_old and n_new:
        newer_h[0], older_h[-1] = older_h[0], newer_h[-1]  # ties at both ends
        newer_h.sort()
        older_h.sort()
    positions = rng.permutation(n_old + n_new)
    older_p, newer_p = positions[:n_old].astype(old_dtype), positions[n_old:].astype(new_dtype)
    runs = [(np.array([1], np.uint64), np.array([9], np.uint32)), (older_h, older_p), (newer_h, newer_p)]
    _merge_last_two(runs)
    assert len(runs) == 2 and runs[0][1].tolist() == [9]  # only the last two runs merged
    hashes, pos = runs[1]
    both = np.concatenate([older_h, newer_h])
    order = np.argsort(both, kind="stable")  # what the merge must equal: older entries first on ties
    assert hashes.dtype == np.uint64 and pos.dtype == np.dtype(merged)
    assert np.array_equal(hashes, both[order])
    assert np.array_equal(pos, np.concatenate([older_p.astype(np.int64), newer_p.astype(np.int64)])[order])


def test_positions_switch_from_uint32_to_int64(monkeypatch):
    monkeypatch.setattr(tallies, "POSITION_LIMIT", 100)
    rng = np.random.default_rng(3)
    pool = id_pool(400, rng)
    chunks = [pool[i : i + 30] for i in range(0, 240, 30)]
    chunks[5] = chunks[5][:10] + chunks[1][:20]  # repeats after the switch
    expected = set_oracle(chunks)
    seen, dtypes = SeenIds(), []
    for chunk, want in zip(chunks, expected, strict=True):
        ids = pa.array(chunk, pa.string())
        hashes = id_hashes(ids)
        repeated = seen.repeated(ids, hashes)
        assert repeated.tolist() == want
        seen.add(ids.filter(pa.array(~repeated)), hashes[~repeated])
        check_runs(seen, id_hashes)
        dtypes.append((len(seen), [p.dtype.name for _, p in seen._runs]))
    # a run is uint32 while its positions stay below the limit; the first chunk past it, and every
    # merge with it, is int64
    assert dtypes[:5] == [
        (30, ["uint32"]),
        (60, ["uint32"]),  # two runs of 30 merged
        (90, ["uint32"]),
        (120, ["uint32", "int64"]),  # positions 90..119: past the limit
        (150, ["int64"]),  # merged with the uint32 run: int64
    ]
    for _, names in dtypes:  # older runs first: uint32 ones, then int64 ones
        assert names == ["uint32"] * names.count("uint32") + ["int64"] * names.count("int64")
    assert dtypes[-1] == (220, ["int64", "int64"])
    assert all(p.max() < 100 for _, p in seen._runs if p.dtype == np.uint32)


def test_ids_are_kept_compact_and_compared_as_text():
    big = pa.array([f"A{i:015d}" for i in range(10_000)], pa.string())
    part = big.slice(9_000, 500)  # a slice keeps (and pickles) the whole array's buffers
    seen = SeenIds()
    seen.add(part, id_hashes(part))
    stored = seen._batches[0]
    assert stored.offset == 0 and stored.type == pa.string()
    assert stored.get_total_buffer_size() <= 501 * 4 + 500 * 16 + 64
    assert stored.to_pylist() == part.to_pylist()
    large = pa.array(["x1", "x2", "A000000000009100"], pa.large_string())
    seen.add(large[:2], id_hashes(large[:2]))
    assert seen._batches[1].type == pa.string()
    assert seen.repeated(large, id_hashes(large)).tolist() == [True, True, True]
    fresh = pa.array([f"A{i:015d}" for i in range(8_990, 9_010)], pa.string())
    assert seen.repeated(fresh, id_hashes(fresh)).tolist() == [False] * 10 + [True] * 10


@pytest.mark.parametrize(("limit", "second"), [(60, "uint32"), (59, "int64")])
def test_positions_are_uint32_exactly_while_below_the_limit(monkeypatch, limit, second):
    monkeypatch.setattr(tallies, "POSITION_LIMIT", limit)
    seen = SeenIds()
    first = pa.array([f"a{i}" for i in range(50)], pa.string())
    seen.add(first, id_hashes(first))
    then = pa.array([f"b{i}" for i in range(10)], pa.string())  # positions 50..59, a run of its own
    seen.add(then, id_hashes(then))
    assert [p.dtype.name for _, p in seen._runs] == ["uint32", second]
    check_runs(seen, id_hashes)


ids_strategy = st.lists(
    st.lists(
        st.one_of(st.sampled_from(["", "a", "A1", "a\x00", "ü", "x" * 8, "x" * 9]), st.text(max_size=20)), max_size=30
    ),
    max_size=8,
)


@settings(max_examples=examples(200), deadline=None)
@given(ids_strategy)
@example([["a", "b"], ["b", "c"], ["a", "c", "d"]])
@example([[""], [""], ["x" * 8, "x" * 9], ["x" * 9]])
def test_repeated_ids_match_a_set_even_when_every_hash_collides(chunks):
    # ids unique within a chunk, as validation leaves them
    chunks = [list(dict.fromkeys(c)) for c in chunks]
    expected = set_oracle(chunks)
    assert run_chunks(chunks, id_hashes) == expected
    assert run_chunks(chunks, lambda ids: id_hashes(ids) & np.uint64(3)) == expected  # four hash values
    assert run_chunks(chunks, lambda ids: np.zeros(len(ids), np.uint64)) == expected  # one hash value


def _reference_hash(text: str) -> int:
    """id_hashes by its definition, in plain Python integers: splitmix64's finaliser over the length, then over
    each little-endian 8-byte word of the UTF-8 bytes (the last one zero-padded)."""
    mask = (1 << 64) - 1

    def mix(h: int) -> int:
        h ^= h >> 30
        h = (h * 0xBF58476D1CE4E5B9) & mask
        h ^= h >> 27
        h = (h * 0x94D049BB133111EB) & mask
        return h ^ (h >> 31)

    data = text.encode()
    h = mix(len(data) ^ 0x243F6A8885A308D3)
    for k in range(0, len(data), 8):
        word = int.from_bytes(data[k : k + 8], "little")
        h = mix(((h ^ word) * 0x9E3779B97F4A7C15) & mask)
    return h


def test_id_hashes_follow_their_definition_on_every_length_and_slices():
    """Lengths 0-40 (every tail length), multi-byte UTF-8, nulls' neighbours and a sliced array (offsets not at 0)."""
    ids = ["", "é", "ab", *("x" * n for n in range(3, 41)), "Ω≈ç√∫˜µ≤", "A000000000009100", "cust-42-ÿ"]
    expected = [_reference_hash(i) for i in ids]
    assert id_hashes(pa.array(ids, pa.string())).tolist() == expected
    assert id_hashes(pa.array(ids, pa.large_string())).tolist() == expected
    assert id_hashes(pa.array(["pad", *ids], pa.string()).slice(1)).tolist() == expected
    assert id_hashes(pa.array([], pa.string())).dtype == np.uint64
