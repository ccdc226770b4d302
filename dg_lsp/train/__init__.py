"""Training the default model: corpus, tokenizer, objectives, loop, export."""
