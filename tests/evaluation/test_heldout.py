"""Held-out line holes: deterministic, well-formed, scored by exact match and similarity."""

import json

from dg_lsp.evaluation import heldout

PYTHON = '''import os
import sys


def read_config(path):
    # Read the configuration file.
    with open(path, encoding="utf-8") as f:
        data = f.read()
    return parse(data)


class Store:
    def __init__(self, root):
        self.root = root
        self.items = {}

    def put(self, key, value):   
        self.items[key] = value
'''
LUA = "-- a comment line here\nlocal function add(a, b)\n  return a + b\nend\n\nreturn { add = add }\n"


def documents():
    return [
        {"text": PYTHON, "language": "python", "path": "pkg/config.py"},
        {"text": LUA, "language": "lua", "path": "lib/add.lua"},
        {"text": "\n\n# only a comment\n", "language": "python", "path": "empty.py"},
    ]


def test_holes_are_deterministic_and_seeded():
    first = heldout.cut_holes(documents(), seed=0, per_document=2)
    assert first == heldout.cut_holes(documents(), seed=0, per_document=2)
    assert len(first) == 4  # two per document with candidate lines; none from the comment-only one
    others = [heldout.cut_holes(documents(), seed=s, per_document=2) for s in range(1, 6)]
    assert any(o != first for o in others)


def test_every_hole_is_a_line_after_its_indentation_and_reproduces_the_text():
    docs = {d["path"]: d["text"] for d in documents()}
    for seed in range(10):
        for hole in heldout.cut_holes(documents(), seed=seed, per_document=3):
            text = docs[hole.path]
            assert hole.prefix + hole.hole + hole.suffix == text[hole.start:hole.end]
            line = text.split("\n")[hole.line]
            assert hole.hole == line.strip()
            assert hole.prefix.endswith(line[: len(line) - len(line.lstrip())])
            assert hole.suffix.startswith(line[len(line.rstrip()):] + "\n")
            assert 8 <= len(hole.hole) <= 120
            assert not hole.hole.startswith(("#", "--"))


def test_candidates_skip_blank_short_long_and_comment_lines():
    assert heldout.is_candidate("    return parse(data)", "python")
    assert not heldout.is_candidate("    # a comment long enough", "python")
    assert not heldout.is_candidate("-- a lua comment line", "lua")
    assert not heldout.is_candidate("// a go comment line", "go")
    assert not heldout.is_candidate("   x = 1   ", "python")  # 5 characters
    assert not heldout.is_candidate("x = " + "1" * 200, "python")
    assert not heldout.is_candidate("      ", "python")


def test_context_is_trimmed_at_line_boundaries():
    text = "".join(f"value_{i:03d} = compute({i})\n" for i in range(200))
    hole = heldout.cut_hole(text, 100, prefix_chars=100, suffix_chars=60)
    assert hole.hole == "value_100 = compute(100)"
    assert hole.prefix == "" or text[hole.start - 1] == "\n"
    assert hole.end == len(text) or text[hole.end - 1] == "\n"
    assert 50 <= len(hole.prefix) <= 100 and 30 <= len(hole.suffix) <= 60
    assert hole.prefix + hole.hole + hole.suffix == text[hole.start:hole.end]
    whole = heldout.cut_hole(text, 0, suffix_chars=10_000)
    assert whole.start == 0 and whole.prefix == "" and whole.end == len(text)


def test_documents_are_read_from_json_lines(tmp_path):
    path = tmp_path / "heldout.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in documents()) + "\n\n" + json.dumps({"no": "text"}) + "\n")
    assert [d["path"] for d in heldout.read_documents(path)] == ["pkg/config.py", "lib/add.lua", "empty.py"]


def test_scores_and_evaluate():
    assert heldout.score("return a + b", "  return a + b ") == (True, 1.0)
    exact, similarity = heldout.score("return a + b", "return a - b")
    assert not exact and 0.8 < similarity < 1.0
    holes = heldout.cut_holes(documents(), seed=0)
    answers = {h.prefix: h.hole for h in holes}
    results = heldout.evaluate(holes, lambda prefix, suffix: answers[prefix] + "\n", progress=False)
    assert results.n == len(holes) and results.exact_match == 1.0 and results.edit_similarity == 1.0
    wrong = heldout.evaluate(holes, lambda prefix, suffix: "pass", progress=False)
    assert wrong.exact_match == 0.0 and wrong.edit_similarity < 0.5


def test_holes_inside_a_line_start_after_some_of_its_code():
    """`inside=True`: the cursor is somewhere in the line's code (as while typing), and the hole
    is the rest of that line; the lines chosen are the same as for holes at the line start."""
    starts = heldout.cut_holes(documents(), seed=0, per_document=2)
    insides = heldout.cut_holes(documents(), seed=0, per_document=2, inside=True)
    assert insides == heldout.cut_holes(documents(), seed=0, per_document=2, inside=True)
    assert [h.line for h in insides] == [h.line for h in starts]
    for start, inside in zip(starts, insides):
        assert start.hole.endswith(inside.hole) and 0 < len(inside.hole) < len(start.hole)
        assert inside.prefix == start.prefix + start.hole[: len(start.hole) - len(inside.hole)]
        assert inside.suffix == start.suffix
