"""Language models for the hybrid tiny/large schemes: the byte-level BPE tokenizer, our small
GPT (`CausalTransformer`) behind the `LanguageModel` interface with batched KV-cache decoding,
checkpoints (ours and local Hugging Face causal LMs) and training.

Import the submodules directly (``tinylarge.models.text.language_model``, ...); this package
imports nothing heavy on its own.
"""
