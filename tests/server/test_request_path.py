"""The completion request path on a real tiny model (no fake): tokenizer calls per request, the
prompt cache per document, and the completion cache's model identity."""

import asyncio
import json
import shutil

import pytest
from lsprotocol import types

from dg_lsp.context.ring import SnippetRing
from dg_lsp.engine.engine import Engine
from dg_lsp.model.loader import load_model
from dg_lsp.server.completions import CompletionService
from dg_lsp.server.documents import DocumentStore
from dg_lsp.server.model_host import ModelHost
from dg_lsp.server.settings import Settings
from dg_lsp.server.worker import ModelWorker

BODY = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(40))
TEXT_A = "import os\n\n\n" + BODY + "def main():\n    \n"
TEXT_B = "import sys\n\n\n" + BODY.replace("value", "item") + "class Runner:\n    \n"


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory, dense_dir):
    model = shutil.copytree(dense_dir, tmp_path_factory.mktemp("spm") / "m")
    (model / "dg_lsp.json").write_text(json.dumps({"fim_order": "spm"}))
    return model


class CountingTokenizer:
    """The real tokenizer, counting its `encode` calls (every tokenizer use goes through one)."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def encode(self, text, add_special_tokens=False):
        self.calls += 1
        return self.real.encode(text, add_special_tokens=add_special_tokens)

    def __getattr__(self, name):
        return getattr(self.real, name)


class Session:
    """A completion service over real documents, a real engine and the real model thread."""

    def __init__(self, engine):
        self.documents = DocumentStore(SnippetRing())
        self.host = ModelHost(lambda event: None)
        self.host.engine, self.host.state = engine, "ready"
        self.service = CompletionService(self.documents, self.host, ModelWorker())
        self.settings = Settings(steps=1)

    def open(self, uri, text):
        self.documents.open(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))

    def type(self, uri, text):
        doc = self.documents.get(uri)
        line, character = doc.position_at(len(doc.text.rstrip("\n")))
        change = types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(line, character), types.Position(line, character)), text=text)
        self.documents.change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=doc.version + 1),
            content_changes=[change]))

    def complete(self, uri):
        doc = self.documents.get(uri)
        line, character = doc.position_at(len(doc.text.rstrip("\n")))
        return asyncio.run(self.service.complete(uri, types.Position(line, character), False, self.settings))


def test_a_keystroke_tokenizes_only_the_changed_segment(spm_dir):
    engine = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    counting = CountingTokenizer(engine.prompts.tokens.tokenizer)
    engine.prompts.tokens.tokenizer = engine.prompt_format.tokenizer = counting
    session = Session(engine)
    session.service.use_drafts = False  # a prompt-lookup draft is tokenized on its own: not a prompt segment
    session.open("file:///a.py", TEXT_A)
    session.open("file:///b.py", TEXT_B)  # its recent edit is a snippet in a.py's prompt
    assert session.complete("file:///a.py").source == "model"
    per_request = []
    for ch in "return os.path":
        session.type("file:///a.py", ch)
        before = counting.calls
        result = session.complete("file:///a.py")
        assert result.source in ("model", "cache", "forward"), result.source
        per_request.append(counting.calls - before)
    assert max(per_request) <= 1, per_request  # the prefix changed; the snippets and suffix did not


def test_two_documents_typed_in_turn_through_the_server_path(spm_dir):
    engine = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    session = Session(engine)
    session.open("file:///a.py", TEXT_A)
    session.open("file:///b.py", TEXT_B)
    for uri in ("file:///a.py", "file:///b.py"):  # the first edit moves each one's snippet to where it is typed
        session.type(uri, "#")
    for uri in ("file:///a.py", "file:///b.py"):
        session.complete(uri)
    encoded = []
    for ch in "return":
        for uri in ("file:///a.py", "file:///b.py"):
            session.type(uri, ch)
            before = engine.prompt_cache.tokens_encoded
            session.complete(uri)
            encoded.append(engine.prompt_cache.tokens_encoded - before)
    # A keystroke encodes what it typed (and a token or two that merge with it), never the prompt.
    assert max(encoded) <= 4, encoded
    assert {"file:///a.py", "file:///b.py"} <= set(engine.prompt_cache.entries)


def test_a_new_model_clears_the_completion_cache(spm_dir, dense_dir):
    first = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    session = Session(first)
    session.open("file:///a.py", TEXT_A)
    assert session.complete("file:///a.py").source == "model"
    assert session.complete("file:///a.py").source == "cache"
    second = Engine(load_model(dense_dir, progress=False), context_tokens=512)
    assert second.identity != first.identity
    session.host.engine = second
    assert session.complete("file:///a.py").source == "model"  # never the old model's answer


def test_only_confident_tokens_are_shown(spm_dir):
    from dataclasses import replace

    from dg_lsp.server.confidence import confident_prefix

    assert confident_prefix([5, 6, 7, 8], [0.9, 0.8, 0.2, 0.95], 0.5) == [5, 6]
    assert confident_prefix([5, 6], [0.9, 0.8], 0.5) == [5, 6] and confident_prefix([5], [0.1], 0.5) == []
    engine = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    session = Session(engine)
    session.open("file:///a.py", TEXT_A.replace("def main():\n    \n", "value = \n"))
    doc = session.documents.get("file:///a.py")
    at = types.Position(*doc.position_at(len(doc.text) - 1))

    def complete(invoked, threshold):
        # The cursor is inside a line ("value = |"): the in-line threshold gates it.
        settings = replace(session.settings, minConfidence=0.0, minConfidenceInLine=threshold, candidates=2)
        return asyncio.run(session.service.complete("file:///a.py", at, invoked, settings))

    everything = complete(False, 0.0)
    assert everything.source == "model" and everything.texts  # the random model's guess, shown ungated
    # A random model is never sure of a token: at a threshold of ~1 nothing is shown ...
    assert complete(False, 0.999999).texts == []
    # ... except when the user asks (invoked): the whole candidates come after the (empty) confident ones.
    assert complete(True, 0.999999).texts


def test_a_trusted_draft_from_the_open_documents_is_shown_and_keys_the_cache(spm_dir):
    """A random model is never confident, but a long match in another open document is evidence
    of its own: its continuation is shown (and is part of the completion cache key)."""
    engine = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    session = Session(engine)
    session.settings = Settings(steps=1, minConfidence=0.999999)
    pattern = "def load(path):\n    with open(path) as handle:\n        data = json.load(handle)\n    return "
    session.open("file:///a.py", "import json\n\n\n" + pattern + "\n")
    assert session.complete("file:///a.py").texts == []  # no draft: the only match is the cursor itself
    session.open("file:///b.py", pattern + "data\n")
    session.type("file:///a.py", "")
    result = session.complete("file:///a.py")
    assert result.source == "model" and result.texts == ["data"]
    session.documents.close("file:///b.py")
    assert session.complete("file:///a.py").texts == []  # a new draft (none): not the cached answer
    session.service.use_drafts = False
    session.open("file:///b.py", pattern + "data\n")
    assert session.complete("file:///a.py").texts == []


def test_at_column_0_after_an_opener_the_prompt_and_the_completion_carry_the_body_indentation(spm_dir):
    """The editor did not indent the body's first line: the server types the indentation into
    the prompt (as auto-indent would) and in front of what it shows; a draft from another open
    document, which starts with that indentation, still seeds the canvas and is shown whole."""
    engine = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    session = Session(engine)
    session.settings = Settings(steps=1, minConfidence=0.999999)
    head = "import json\n\n\ndef load(path):\n    with open(path) as handle:\n"
    session.open("file:///a.py", head + "\n")
    doc = session.documents.get("file:///a.py")
    plan = session.service.plan(doc, len(head), session.settings)
    assert plan.mode == "block" and plan.typed_indent == "        " and plan.prefix.endswith(":\n        ")
    session.open("file:///b.py", head + "        return json.load(handle)\n")
    at_column_0 = types.Position(*doc.position_at(len(head)))
    result = asyncio.run(session.service.complete("file:///a.py", at_column_0, False, session.settings))
    assert result.source == "model" and result.texts == ["        return json.load(handle)"]


def test_a_model_trained_without_cross_file_context_gets_no_snippets(spm_dir, tmp_path):
    """`dg_lsp.json` `cross_file_context: false` (what `dg-lsp train` exports): the other open
    files stay out of the prompt; without it they are there."""
    with_snippets = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    plain = shutil.copytree(spm_dir, tmp_path / "plain")
    (plain / "dg_lsp.json").write_text(json.dumps({"fim_order": "spm", "cross_file_context": False}))
    without = Engine(load_model(plain, progress=False), context_tokens=512)
    assert with_snippets.cross_file_context and not without.cross_file_context
    for engine, expect_context in ((with_snippets, True), (without, False)):
        session = Session(engine)
        session.open("file:///a.py", TEXT_A)
        session.open("file:///b.py", TEXT_B)
        doc = session.documents.get("file:///a.py")
        plan = session.service.plan(doc, len(doc.text) - 1, session.settings)
        assert bool(plan.context) is expect_context
        assert ("# path: /b.py" in plan.context) is expect_context


def test_cross_file_context_must_be_a_boolean(spm_dir, tmp_path):
    from dg_lsp.errors import ModelLoadError

    broken = shutil.copytree(spm_dir, tmp_path / "broken")
    (broken / "dg_lsp.json").write_text(json.dumps({"cross_file_context": "no"}))
    with pytest.raises(ModelLoadError, match="cross_file_context must be true or false"):
        Engine(load_model(broken, progress=False), context_tokens=512)


def test_the_threshold_depends_on_where_the_cursor_is():
    """At a line's start `minConfidence`, inside a line's code `minConfidenceInLine`."""
    from dg_lsp.server.confidence import threshold_at

    settings = Settings(minConfidence=0.35, minConfidenceInLine=0.1)
    text = "def f(path):\n    with open(path) as fh:\n        ret\n\n"
    assert threshold_at(settings, text, text.index("ret") + 3) == 0.1  # in a word
    assert threshold_at(settings, text, text.index("ret") + 1) == 0.1
    assert threshold_at(settings, text, text.index("ret")) == 0.35  # after the indentation
    assert threshold_at(settings, text, len(text) - 1) == 0.35  # column 0 of a blank line
    assert threshold_at(settings, text, 0) == 0.35 and threshold_at(settings, "", 0) == 0.35
    assert threshold_at(settings, "x = 1", 5) == 0.1  # the first line has no line break before it
    # An invoked request: the floor, wherever the cursor is, but never stricter than that place's gate.
    invoked = Settings(minConfidence=0.35, minConfidenceInLine=0.1, minConfidenceInvoked=0.01)
    assert threshold_at(invoked, text, text.index("ret") + 3, invoked=True) == 0.01
    assert threshold_at(invoked, text, len(text) - 1, invoked=True) == 0.01
    assert threshold_at(invoked, text, len(text) - 1) == 0.35
    lenient = Settings(minConfidence=0.0, minConfidenceInLine=0.1, minConfidenceInvoked=0.2)
    assert threshold_at(lenient, text, len(text) - 1, invoked=True) == 0.0
    assert threshold_at(lenient, text, text.index("ret") + 3, invoked=True) == 0.1


def test_an_invoked_request_offers_the_part_above_its_floor_first_then_the_whole_candidate():
    """With a fake generation (two candidates of known tokens and confidences, a fake decoder):
    the first offer is the first candidate cut where its probability falls below the threshold,
    the whole candidates follow; an automatic request offers only the cut ones."""
    from types import SimpleNamespace

    from dg_lsp.context.document import Document
    from dg_lsp.context.plan import plan_infill

    words = {1: "total", 2: " =", 3: " a", 4: " + b", 5: " * c"}
    engine = SimpleNamespace(prompts=SimpleNamespace(decode=lambda ids, healed: "".join(words[i] for i in ids)))
    generation = SimpleNamespace(rows=[[1, 2, 3, 4], [1, 2, 3, 5]], confidences=[[0.9, 0.5, 0.2, 0.1], [0.9, 0.5, 0.2, 0.9]],
                                 healed="")
    doc = Document("file:///a.py", "python", "def f(a, b):\n    \n    return total\n")
    service = CompletionService  # _shown_texts is static: no host, worker or model needed
    plan = plan_infill(doc, len("def f(a, b):\n    "), lambda text: len(text) // 4)
    shown = service._shown_texts(doc, plan, engine, generation, 0.05, invoked=True)
    # 0.9 * 0.5 * 0.2 = 0.09 >= 0.05, then * 0.1 < 0.05; the second stays above: 0.081.
    assert shown == ["total = a", "total = a * c", "total = a + b"]
    assert service._shown_texts(doc, plan, engine, generation, 0.05, invoked=False) == ["total = a", "total = a * c"]
    assert service._shown_texts(doc, plan, engine, generation, 0.5, invoked=False) == ["total"]
    assert service._shown_texts(doc, plan, engine, generation, 0.5, invoked=True) == [
        "total", "total = a + b", "total = a * c"]


def test_only_an_invoked_request_seeds_the_canvas_with_the_greedy_line(spm_dir, monkeypatch):
    engine = Engine(load_model(spm_dir, progress=False), context_tokens=512)
    session = Session(engine)
    session.open("file:///a.py", TEXT_A)
    doc = session.documents.get("file:///a.py")
    at = types.Position(*doc.position_at(len(doc.text) - 1))
    asked = []
    generate = engine.generate
    monkeypatch.setattr(engine, "generate", lambda *a, **k: asked.append(k) or generate(*a, **k))
    for invoked in (False, True):
        settings = Settings(steps=1, invokedSteps=2, candidates=1, seed=int(invoked))  # no cache hit
        assert asyncio.run(session.service.complete("file:///a.py", at, invoked, settings)).source == "model"
    assert not asked[0].get("greedy_seed") and asked[1].get("greedy_seed") is True
    # Every request says whether one line of it is shown (the greedy seed then ends at the line break).
    for invoked, ask in zip((False, True), asked):
        plan = session.service.plan(doc, len(doc.text) - 1, settings, invoked=invoked)
        assert ask["one_line"] is (plan.mode == "line")


def test_canvas_seed_follows_the_drafts_trust():
    from types import SimpleNamespace

    from dg_lsp.context.lookup import Draft
    from dg_lsp.server.completions import canvas_seed

    seeding_engine = SimpleNamespace(seeds_with_greedy=True)
    line, block = SimpleNamespace(mode="line", typed_indent=""), SimpleNamespace(mode="block", typed_indent="    ")
    assert canvas_seed(line, None, seeding_engine, invoked=True) == {"greedy_seed": True}
    trusted = Draft(text="    return x", match_chars=60, source="lookup")
    assert trusted.trusted
    assert canvas_seed(block, trusted, seeding_engine, invoked=True) == {"draft": "return x"}  # the typed indent is in the prompt
    untrusted = Draft(text="    return y", match_chars=20, source="lookup")
    assert canvas_seed(block, untrusted, seeding_engine, invoked=True) == {"greedy_seed": True}
    assert canvas_seed(block, untrusted, seeding_engine, invoked=False) == {"draft": "return y"}
    assert canvas_seed(line, None, seeding_engine, invoked=False) == {}
    assert canvas_seed(line, None, SimpleNamespace(), invoked=True) == {}  # an engine without the seed
