"""TrendSim: a trending-topic simulation under poisoning attacks (arXiv 2412.12196), see docs/trendsim.md.

Modules: `data` (tweets / user-pool loaders), `timing` (time density, sampler, schedules), `media` (post,
hot list, pages, views), `parsing` (decision / number extraction, reference and robust modes), `agents`
(prompt assembly for users, attackers and moderation), `simulator` (event heap, virtual clock,
phase-synchronous ticks with one `chat_batch` per tick, checkpoint / resume), `rules` (a transparent
rule-based policy as a ChatBackend), `metrics` (docs/trendsim.md §10 from traces), `backends` (backend from config).
"""
