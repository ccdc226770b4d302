"""Completions at a cursor: cache, context, engine, post-processing.

Used by both `textDocument/inlineCompletion` and the `textDocument/completion` fallback.
Automatic triggers are cheap (few denoising steps, one candidate); an invoked request may
spend more steps and returns several candidates.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..context.lookup import Draft, lookup_draft
from ..context.plan import plan_infill
from ..context.postprocess import clean_completion
from ..errors import Cancelled, EngineUnavailable
from .completion_cache import CompletionCache
from .confidence import confident_prefix, threshold_at
from .documents import DocumentStore
from .model_host import ModelHost
from .settings import Settings
from .worker import ModelWorker


# Before planning, a request waits this long for a newer keystroke (already sent, not yet
# read) to make it moot, so a burst of keystrokes starts one model call, not one each.
SUPERSEDE_WINDOW_S = 0.002


@dataclass
class CompletionResult:
    texts: list[str]  # distinct, cleaned, in order of preference; empty: nothing to offer
    offset: int  # where they are inserted
    source: str  # "model", "cache", "forward", or why there is none ("loading", "disabled", ...)
    timings_ms: dict | None = None


class CompletionService:
    def __init__(self, documents: DocumentStore, host: ModelHost, worker: ModelWorker):
        self.documents = documents
        self.host = host
        self.worker = worker
        self.cache = CompletionCache()
        self.last_latency_ms: float | None = None
        self.superseded = 0  # requests dropped before the model call because the buffer moved on
        self._engine_identity: str | None = None
        # Seed the canvas with a prompt-lookup draft from the open documents (engines that take one).
        self.use_drafts = True

    async def complete(self, uri: str, position, invoked: bool, settings: Settings) -> CompletionResult:
        doc = self.documents.get(uri)
        offset = self.documents.offset(doc, position)
        if not settings.enabled_for(doc.language_id):
            return CompletionResult([], offset, "disabled")
        engine = self.host.engine
        if engine is None:
            return CompletionResult([], offset, self.host.state)

        if engine.identity != self._engine_identity:  # a new model: nothing cached for the old one holds
            self.cache.clear()
            self._engine_identity = engine.identity
        if (texts := self.cache.forward(uri, doc.text, offset)) is not None:
            return CompletionResult(texts, offset, "forward")
        steps = settings.invokedSteps if invoked else settings.steps
        candidates = settings.candidates if invoked else 1
        plan = self.plan(doc, offset, settings, invoked)
        draft = self.draft(doc, offset, plan, engine)
        seeding = canvas_seed(plan, draft, engine, invoked)
        threshold = threshold_at(settings, doc.text, offset, invoked)
        key = CompletionCache.key(engine.identity, settings.seed, plan, "invoked" if invoked else "auto",
                                  (steps, candidates, threshold, tuple(sorted(seeding.items()))))
        if (texts := self.cache.get(key)) is not None:
            self.cache.remember_shown(uri, doc.text, offset, texts)
            return CompletionResult(texts, offset, "cache")

        version = doc.version
        await asyncio.sleep(SUPERSEDE_WINDOW_S)
        if doc.version != version or self.documents.get(uri) is not doc:
            self.superseded += 1
            return CompletionResult([], offset, "superseded")

        def work(is_cancelled):
            # Built on the model thread: the event loop never waits for the tokenizer.
            prompt = engine.prompts.build(plan.prefix, plan.suffix, plan.context, key=uri)
            generation = engine.generate(prompt, canvas_length=plan.canvas_length, max_steps=steps,
                                         candidates=candidates, seed=settings.seed, cancel=is_cancelled,
                                         one_line=plan.mode == "line", **seeding)
            return generation, (draft.text if draft and draft.trusted else None)

        try:
            generation, trusted_draft = await self.worker.run("completion", work)
        except Cancelled:
            return CompletionResult([], offset, "cancelled")
        except EngineUnavailable:  # a remote server down: told once, nothing cached, retried later
            return CompletionResult([], offset, "unavailable")
        if doc.version != version:  # the buffer changed while we worked: this answer is stale
            return CompletionResult([], offset, "stale")
        texts = self._shown_texts(doc, plan, engine, generation, threshold, invoked, trusted_draft)
        self.cache.put(key, texts)
        self.cache.remember_shown(uri, doc.text, offset, texts)
        self.last_latency_ms = generation.timings_ms.get("total")
        return CompletionResult(texts, offset, "model", generation.timings_ms)

    @staticmethod
    def _shown_texts(doc, plan, engine, generation, threshold: float, invoked: bool,
                     trusted_draft: str | None = None) -> list[str]:
        """Each candidate cut before its first unconfident token (the first one: or a trusted
        draft's text, if that is longer; see `confidence`), then post-processed; an invoked
        request also offers the whole candidates after those."""
        def decode(ids) -> str:  # a healed token's text is before the cursor already; typed indentation is not
            return plan.typed_indent + engine.prompts.decode(ids, generation.healed)

        raw = [decode(confident_prefix(row, conf, threshold))
               for row, conf in zip(generation.rows, generation.confidences)]
        if trusted_draft and raw and len(trusted_draft) > len(raw[0]):
            raw[0] = trusted_draft
        if invoked and threshold > 0:
            raw += [decode(row) for row in generation.rows]
        return _distinct(t for t in (clean_completion(doc, plan, text) for text in raw) if t)

    def draft(self, doc, offset: int, plan, engine) -> Draft | None:
        """What followed the longest earlier match of the text before the cursor in the open
        documents (`dg_lsp.context.lookup`), for engines that seed their canvas with a draft."""
        if not (self.use_drafts and getattr(engine, "takes_drafts", False)):
            return None
        draft = lookup_draft(doc.text[:offset], doc.uri, self.documents.texts(), cursor=offset,
                             multiline=plan.mode != "line")
        if draft is not None and not draft.text.startswith(plan.typed_indent):
            return None  # it proposes another indentation than the one the prompt ends with
        return draft

    def plan(self, doc, offset: int, settings: Settings, invoked: bool = False):
        """What the model would be asked: span, canvas and prompt text (no model call). An
        automatic request's canvas is at most `autoMaxCanvas` tokens."""
        engine = self.host.engine
        # The builder's memoized count: the prompt built from this prefix then tokenizes nothing new.
        count = engine.prompts.count if engine else (lambda text: len(text) // 4)
        # The engine's budget is the setting, cut to the prompt length its model was trained on.
        budget = engine.context_tokens if engine else settings.contextTokens
        # Snippets of other open files, unless the model says it was trained without them.
        snippets = (self.documents.ring.snippets(doc.uri, max_chars=budget)
                    if getattr(engine, "cross_file_context", True) else ())
        return plan_infill(
            doc, offset, count, budget_tokens=budget,
            max_canvas=settings.maxCanvas if invoked else min(settings.maxCanvas, settings.autoMaxCanvas),
            snippets=snippets,
        )


def canvas_seed(plan, draft: Draft | None, engine, invoked: bool) -> dict:
    """What starts the canvas, as `engine.generate`'s keyword arguments (also part of the cache
    key). An invoked request without a trusted prompt-lookup draft starts from the encoder's
    greedy line (engines that offer it); otherwise the draft, if any, seeds it."""
    if invoked and not (draft and draft.trusted) and getattr(engine, "seeds_with_greedy", False):
        return {"greedy_seed": True}
    # The prompt ends with the typed indentation already: the canvas continues after it.
    return {"draft": draft.text[len(plan.typed_indent):]} if draft else {}


def _distinct(texts) -> list[str]:
    seen, out = set(), []
    for text in texts:
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
