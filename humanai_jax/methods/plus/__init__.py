"""PLUS (arXiv 2507.13579): a PPO-trained user summarizer co-adapting with a summary-conditioned reward model.

Read in order: `data` (examples, prompt rendering), `pets` (synthetic Pets/Pets-OOD), `loaders`
(UF-P-2/4, PRISM), `text` (tokenizer, chat template), `loop` (conditioning, rollouts, the schedule).
The reward model, critic and PPO are the core's: `humanai_jax.rl.reward_model`, `humanai_jax.rl.ppo`.
"""
