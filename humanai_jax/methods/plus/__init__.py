"""PLUS (arXiv 2507.13579): a PPO-trained user summarizer co-adapting with a summary-conditioned reward model.

Read in order: `data` (examples, prompt rendering), `pets` (synthetic Pets/Pets-OOD), `loaders`
(UF-P-2/4, PRISM), `models` (reward model, critic, reference policy), `loop` (rollouts, PPO, RM updates).
"""
