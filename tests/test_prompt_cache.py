"""The prompt cache re-encodes only what changed, per document, and gives the same logits as a
cold encode."""

import pytest
import torch

from dg_lsp.engine.prompt_cache import PromptCache
from dg_lsp.model.loader import load_model


@pytest.fixture(scope="module")
def model(dense_dir):
    return load_model(dense_dir, with_tokenizer=False, progress=False).model


def ids(n, seed=0):
    return torch.randint(3, 512, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_typing_encodes_only_new_tokens(model):
    cache = PromptCache(model)
    prompt = ids(40)
    assert cache.prepare(prompt)[1] == 40
    assert cache.prepare(prompt + [11, 12, 13])[1] == 3
    assert cache.prepare(prompt + [11, 12, 13, 14])[1] == 1
    kv, encoded = cache.prepare(prompt)  # backspace: cut back, nothing to encode
    assert encoded == 0 and kv.length == 40
    edited = prompt[:25] + [7] + prompt[26:]
    assert cache.prepare(edited)[1] == 15  # from the edit on
    assert cache.tokens_encoded == 40 + 3 + 1 + 15


def test_cached_prefix_gives_the_same_logits_as_a_cold_encode(model):
    prompt, extra = ids(30, 1), ids(6, 2)
    warm = PromptCache(model)
    warm.prepare(prompt)
    warm_kv, encoded = warm.prepare(prompt + extra)
    assert encoded == 6
    cold_kv, _ = PromptCache(model).prepare(prompt + extra)
    canvas = torch.randint(0, 512, (1, 16))
    torch.testing.assert_close(model.denoise(canvas, warm_kv), model.denoise(canvas, cold_kv), atol=1e-5, rtol=1e-5)


def test_entries_for_several_documents_are_kept(model):
    cache = PromptCache(model, max_entries=2)
    a, b, c = ids(20, 3), ids(20, 4), ids(20, 5)
    assert [cache.prepare(p, key=k)[1] for p, k in ((a, "a"), (b, "b"), (a, "a"), (b, "b"))] == [20, 20, 0, 0]
    cache.prepare(c, key="c")  # evicts the least recently used (a)
    assert cache.prepare(b, key="b")[1] == 0
    assert cache.prepare(a, key="a")[1] == 20


def test_two_documents_typed_in_turn_encode_only_their_typed_tokens(model):
    """Both prompts start with the same BOS: sharing one token must not make one document's
    prompt take over the other's entry."""
    bos = 2
    cache = PromptCache(model)
    a, b = [bos] + ids(30, 7), [bos] + ids(30, 8)
    assert cache.prepare(a, key="a")[1] == 31
    assert cache.prepare(b, key="b")[1] == 31
    encoded = []
    for typed in range(1, 5):
        encoded.append(cache.prepare(a + [40 + i for i in range(typed)], key="a")[1])
        encoded.append(cache.prepare(b + [80 + i for i in range(typed)], key="b")[1])
    assert encoded == [1, 1, 2, 2, 3, 3, 4, 4] or encoded == [1] * 8  # each keystroke: only what it typed
    assert len(cache.entries) == 2


def test_a_new_document_reuses_a_real_shared_prefix_only(model):
    cache = PromptCache(model, min_shared=16)
    snippets = ids(24, 9)  # the same snippets ahead of two documents' own text
    a, b = snippets + ids(10, 10), snippets + ids(10, 11)
    cache.prepare(a, key="a")
    kv_b, encoded = cache.prepare(b, key="b")
    assert encoded == 10  # the 24 shared tokens were copied, not encoded
    assert cache.prepare(a, key="a")[1] == 0  # and a's entry is untouched
    canvas = torch.randint(0, 512, (1, 16))
    cold, _ = PromptCache(model).prepare(b)
    torch.testing.assert_close(model.denoise(canvas, kv_b), model.denoise(canvas, cold), atol=1e-5, rtol=1e-5)
    c = [a[0]] + ids(20, 12)  # only the first token in common: encoded whole
    assert cache.prepare(c, key="c")[1] == 21


def test_an_entry_grown_for_a_long_prompt_gives_the_memory_back(model):
    cache = PromptCache(model)
    long_kv, _ = cache.prepare(ids(3000, 13), key="a")
    grown = long_kv.nbytes()
    short_kv, encoded = cache.prepare(ids(40, 14), key="a")
    assert short_kv is long_kv and encoded == 40
    assert short_kv.nbytes() * 4 < grown


def test_generated_canvases_do_not_leak_into_the_next_prompt(model):
    from dg_lsp.engine.sampler import DenoiseSettings, generate

    cache = PromptCache(model)
    prompt = ids(12, 6)
    kv, _ = cache.prepare(prompt)
    generate(model, kv, DenoiseSettings(canvas_length=16, max_new_tokens=32, max_denoising_steps=1))
    assert kv.length == 28
    kv, encoded = cache.prepare(prompt)
    assert encoded == 0 and kv.length == 12


def test_empty_prompt_is_an_error(model):
    with pytest.raises(ValueError):
        PromptCache(model).prepare([])
