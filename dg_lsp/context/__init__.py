"""The tree-sitter layer between the editor's documents and the engine: per completion
request, which span to fill, how long a canvas, what prompt text, and how to clean the
model's answer. What it knows about each language comes from `dg_lsp.languages`.

    text_units    UTF-8 / UTF-16 / code point conversions
    line_index    line starts kept current under edits, cheaply
    document      Document: text + tree in step with LSP edits; PositionError
    ring          SnippetRing: recent chunks of other documents
    indentation   indentation width, buffer style, re-indenting
    tree_queries  statement starts, last token on a line, top-level regions
    span          line or block mode at a cursor
    boundaries    stable prefix cut and suffix end
    kept          imports and enclosing headers kept by a cut prefix
    plan          plan_infill -> InfillPlan (prompt text, canvas)
    overlap       no repetition of the text after the cursor
    block_end     where a block completion leaves its block
    syntax_guard  a clean buffer stays clean
    postprocess   clean_completion
"""
