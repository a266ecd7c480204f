"""HumanLLM (arXiv 2601.15793): the Cognitive Genome data pipeline and multi-task user-behaviour SFT.

Reading order: readers -> filters (+ kcore) -> schema -> stages (LLM rewrite/tag, synthesis, judge) ->
tasks (SFT samples) -> tokenize (chat template, loss mask, packing) -> evaluation. See docs/humanllm.md.
"""
