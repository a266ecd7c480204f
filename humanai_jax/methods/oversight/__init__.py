"""Scalable oversight (docs/oversight.md): weak-to-strong generalisation (Burns et al. 2023),
debate (Irving et al. 2018; Khan et al. 2024) and sandwiching (Bowman et al. 2022). See docs/oversight.md.

  losses     xent, logconf (auxiliary confidence loss, two warm-up modes), product: pure functions
  metrics    PGR, expected calibration error, gap closed, per-condition accuracy
  models     ClassifierWithHead on the backbone; the toy_latent weak (MLP) and strong (linear head) models
  data       binary data sets: toy_latent, motivebench_binary, blog_need, any HF `datasets` set by config
  w2s        the weak / strong-ceiling / weak-to-strong protocol trained with the shared Trainer; the transfer
             losses' hyper-parameters chosen on validation
  debate     debate protocol, quote verification, baselines (naive, consultancy, expert, strong alone)
  sandwich   sandwiching: non-expert alone, assistant alone, assisted dialogue
"""
