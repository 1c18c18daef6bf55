"""Building and reading corpora: formats, membership, FP rate, thresholds, corruption."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from breach_helpers import sha1_hex, write_pwned
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authsvc.breach import BuildError, Corpus, CorpusError, PasswordList, build_corpus
from authsvc.breach.parse import hex_words_to_nibbles, parse_pwned_block


def _fp_rate(corpus: Corpus, n: int = 20_000) -> float:
    return sum(corpus.contains(f"non-member-{i}") for i in range(n)) / n


def test_single_pwned_file_members_found_and_fp_near_expected(tmp_path: Path, members: list[str]) -> None:
    src = write_pwned(tmp_path / "pwned.txt", members)
    result = build_corpus([src], tmp_path / "c.corpus")
    corpus = Corpus.open(result.path)
    assert result.entries == len(members)
    assert all(corpus.contains(p) for p in members)
    assert all(corpus.contains_sha1(sha1_hex(p).lower()) for p in members[:100])
    # Expected 1/256 = 0.0039; 20k samples -> sd ~0.00044, so this bound is generous.
    assert 0.001 < _fp_rate(corpus) < 0.009
    assert corpus.meta["fingerprint_bits"] == 8 and corpus.meta["expected_fp_rate"] == 2 ** -8


def test_16_bit_variant_has_much_lower_fp(tmp_path: Path, members: list[str]) -> None:
    src = write_pwned(tmp_path / "pwned.txt", members)
    corpus = Corpus.open(build_corpus([src], tmp_path / "c.corpus", bits=16).path)
    assert all(corpus.contains(p) for p in members)
    assert _fp_rate(corpus) < 0.0008  # expected 1.5e-5


def test_unsorted_lf_input_and_duplicates(tmp_path: Path, members: list[str]) -> None:
    shuffled = members * 2
    random.Random(1).shuffle(shuffled)
    src = write_pwned(tmp_path / "pwned.txt", shuffled, crlf=False, sort=False)
    result = build_corpus([src], tmp_path / "c.corpus")
    assert result.entries == len(members)  # duplicates collapsed
    corpus = Corpus.open(result.path)
    assert all(corpus.contains(p) for p in members)


def test_folder_of_prefix_files_with_suffix_lines(tmp_path: Path, members: list[str]) -> None:
    members = members[:600]  # ~one file each: keep the test fast
    folder = tmp_path / "hashes"
    folder.mkdir()
    by_prefix: dict[str, list[str]] = {}
    for p in members:
        h = sha1_hex(p)
        by_prefix.setdefault(h[:5], []).append(f"{h[5:]}:3\r\n")
    for prefix, lines in by_prefix.items():
        (folder / f"{prefix}.txt").write_text("".join(lines), newline="")
    result = build_corpus([folder], tmp_path / "c.corpus", shard_bits=2)
    corpus = Corpus.open(result.path)
    assert result.meta["sources"][0]["formats"] == {"pwned-suffix": len(by_prefix)}
    assert all(corpus.contains(p) for p in members)
    assert _fp_rate(corpus, 5000) < 0.02


def test_folder_of_full_hash_files(tmp_path: Path, members: list[str]) -> None:
    folder = tmp_path / "split"
    folder.mkdir()
    write_pwned(folder / "part1.txt", members[:1000])
    write_pwned(folder / "part2.txt", members[1000:])
    corpus = Corpus.open(build_corpus([folder], tmp_path / "c.corpus").path)
    assert all(corpus.contains(p) for p in members)


def test_plain_list_and_mixed_inputs(tmp_path: Path, members: list[str]) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_bytes(("\ufeff" + "\r\n".join(members[:1500]) + "\n\n").encode("utf-8"))
    pwned = write_pwned(tmp_path / "pwned.txt", members[1500:])
    extra = PasswordList("memory", ["pässwörd-ü", "  spaced  "])
    result = build_corpus([plain, pwned, extra], tmp_path / "c.corpus")
    corpus = Corpus.open(result.path)
    assert result.meta["plain_lines"] == 1502 and result.meta["pwned_lines"] == 1500
    assert all(corpus.contains(p) for p in members)
    assert corpus.contains("pässwörd-ü") and corpus.contains("  spaced  ")


def test_min_count_threshold_keeps_plain_entries(tmp_path: Path) -> None:
    common = [f"common-{i}" for i in range(500)]
    rare = [f"rare-{i}" for i in range(500)]
    src = write_pwned(tmp_path / "pwned.txt", common + rare, [50] * 500 + [2] * 500)
    plain = tmp_path / "plain.txt"
    plain.write_text("plain-only\n")
    result = build_corpus([src, plain], tmp_path / "c.corpus", min_count=10, bits=16)
    corpus = Corpus.open(result.path)
    assert result.entries == 501 and result.meta["below_min_count"] == 500
    assert corpus.min_count == 10
    assert all(corpus.contains(p) for p in common) and corpus.contains("plain-only")
    assert sum(corpus.contains(p) for p in rare) <= 2  # only 16-bit false positives


def test_native_and_pure_python_lookups_agree(tmp_path: Path, members: list[str]) -> None:
    src = write_pwned(tmp_path / "pwned.txt", members)
    for bits in (8, 16):
        path = build_corpus([src], tmp_path / f"c{bits}.corpus", shard_bits=3, bits=bits).path
        fast, slow = Corpus.open(path), Corpus.open(path, use_native=False)
        assert fast.native and not slow.native
        assert all(fast.contains(p) and slow.contains(p) for p in members)
        probes = [f"probe-{i}" for i in range(20_000)]
        assert [fast.contains(p) for p in probes] == [slow.contains(p) for p in probes]
    assert 0.001 < _fp_rate(Corpus.open(tmp_path / "c8.corpus", use_native=False)) < 0.009


def test_malformed_pwned_line_reports_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "pwned.txt"
    good = f"{sha1_hex('a')}:1\r\n"
    src.write_text(good * 3 + "ZZZZ" + good[4:] + good, newline="")
    with pytest.raises(BuildError) as info:
        build_corpus([src], tmp_path / "c.corpus", input_format="pwned")
    assert info.value.line_no == 4 and info.value.path == str(src)
    assert not (tmp_path / "c.corpus").exists()


def test_bad_options_and_missing_input(tmp_path: Path) -> None:
    with pytest.raises(BuildError):
        build_corpus([tmp_path / "nope.txt"], tmp_path / "c.corpus")
    with pytest.raises(BuildError):
        build_corpus([PasswordList("x", ["a"])], tmp_path / "c.corpus", bits=12)


def test_hex_decoder_matches_reference_for_every_byte() -> None:
    hexdigits = set(b"0123456789abcdefABCDEF")
    for pos in range(8):
        words = []
        for v in range(256):
            w = bytearray(b"09afAF3c")
            w[pos] = v
            words.append(bytes(w))
        nib, valid = hex_words_to_nibbles(np.frombuffer(b"".join(words), dtype="<u8"))
        for v in range(256):
            assert bool(valid[v]) == (v in hexdigits)
            if v in hexdigits:
                assert nib.view(np.uint8).reshape(-1, 8)[v][pos] == int(chr(v), 16)


def test_parse_block_keys_match_int_parse() -> None:
    hashes = [os.urandom(20).hex().upper() for _ in range(200)]
    block = "".join(f"{h}:{i + 1}\r\n" for i, h in enumerate(hashes)).encode()
    keys, lines, below = parse_pwned_block(block, prefix=None, min_count=100, path="x", line_base=0)
    assert lines == 200 and below == 99
    assert keys.tolist() == [int(h[:16], 16) for h in hashes[99:]]


# ------------------------------------------------------------------ corruption

@pytest.fixture
def built(tmp_path: Path, members: list[str]) -> Path:
    return Path(build_corpus([write_pwned(tmp_path / "p.txt", members)], tmp_path / "c.corpus",
                             shard_bits=1).path)


def test_truncated_file_is_refused(built: Path) -> None:
    data = built.read_bytes()
    for size in (0, 10, 200, len(data) - 1):
        built.write_bytes(data[:size])
        with pytest.raises(CorpusError):
            Corpus.open(built)


def test_wrong_magic_and_version_are_refused(built: Path) -> None:
    data = bytearray(built.read_bytes())
    built.write_bytes(b"NOTACORP" + data[8:])
    with pytest.raises(CorpusError, match="magic"):
        Corpus.open(built)
    data[8] = 99
    built.write_bytes(data)
    with pytest.raises(CorpusError, match="version"):
        Corpus.open(built)


def test_header_bitflip_is_refused(built: Path) -> None:
    data = bytearray(built.read_bytes())
    data[40] ^= 0x01  # inside the JSON metadata
    built.write_bytes(data)
    with pytest.raises(CorpusError):
        Corpus.open(built)


def test_data_corruption_detected_at_open_and_lazily(built: Path, members: list[str]) -> None:
    data = bytearray(built.read_bytes())
    data[-100] ^= 0xFF  # last shard's fingerprints
    built.write_bytes(data)
    with pytest.raises(CorpusError, match="checksum"):
        Corpus.open(built)  # small file: "auto" verifies every shard at open
    lazy = Corpus.open(built, verify="lazy")
    with pytest.raises(CorpusError) as info:
        for p in members:  # some member lands in the corrupt shard: error, never "not breached"
            lazy.contains(p)
    assert info.value.shard == 1


def test_directory_is_not_a_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError):
        Corpus.open(tmp_path)


# ------------------------------------------------------------------ property

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.integers(0, 2**64 - 1), max_size=300),
       shard_bits=st.integers(0, 3), bits=st.sampled_from([8, 16]))
def test_every_member_is_found(tmp_path: Path, keys: list[int], shard_bits: int, bits: int) -> None:
    out = tmp_path / "prop"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    src = out / "pwned.txt"
    src.write_text("".join(f"{k:016X}{'0' * 24}:1\n" for k in keys))
    result = build_corpus([src], out / "c.corpus", shard_bits=shard_bits, bits=bits, input_format="pwned")
    corpus, slow = Corpus.open(result.path), Corpus.open(result.path, use_native=False)
    assert result.entries == len(set(keys))
    assert all(corpus.contains_key(k) and slow.contains_key(k) for k in keys)
    assert all(corpus.contains_sha1(f"{k:016x}{'0' * 24}") for k in keys)


def test_many_small_blocks_keep_line_numbers(tmp_path: Path, members: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from authsvc.breach import build, parse

    monkeypatch.setattr(parse, "CHUNK_BYTES", 997)
    monkeypatch.setattr(build, "MEMORY_KEYS", 500)  # also exercise the 256 spill files  # ~22 lines per block, parsed on the thread pool
    src = write_pwned(tmp_path / "p.txt", members)
    src.write_bytes(src.read_bytes().rstrip(b"\r\n"))  # last line without terminator
    corpus = Corpus.open(build_corpus([src], tmp_path / "c.corpus").path)
    assert all(corpus.contains(p) for p in members)
    lines = src.read_bytes().split(b"\r\n")
    lines[2499] = lines[2499][:10] + b"G" + lines[2499][11:]
    src.write_bytes(b"\r\n".join(lines))
    with pytest.raises(BuildError) as info:
        build_corpus([src], tmp_path / "c.corpus")
    assert info.value.line_no == 2500


def test_in_memory_spilled_and_respilled_builds_are_identical(tmp_path: Path, members: list[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from authsvc.breach import build

    src = write_pwned(tmp_path / "p.txt", members)
    build_corpus([src], tmp_path / "m.corpus", shard_bits=10)  # default: never touches the disk
    monkeypatch.setattr(build, "MEMORY_KEYS", 100)  # spill to disk after 100 keys
    normal = build_corpus([src], tmp_path / "a.corpus", shard_bits=10)
    monkeypatch.setattr(build, "MAX_LOAD_KEYS", 4)  # every spill bucket is "too big": streamed re-spill
    monkeypatch.setattr(build, "READ_CHUNK_KEYS", 5)
    respilled = build_corpus([src], tmp_path / "b.corpus", shard_bits=10)
    a, b = Corpus.open(normal.path), Corpus.open(respilled.path)
    assert normal.entries == respilled.entries == len(members)
    assert all(a.contains(p) and b.contains(p) for p in members)
    tails = {(tmp_path / f"{n}.corpus").read_bytes()[4096:] for n in ("m", "a", "b")}
    assert len(tails) == 1  # identical filters whichever path the keys took
