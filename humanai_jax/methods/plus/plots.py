"""PLUS's curves: one run's (reward, RM and held-out accuracies, KL) and the table's (per method and seed)."""

from __future__ import annotations

import os

from humanai_jax import experiment


def plot_table_curves(workdir: str, config) -> str:
    """curves.png of the table: per PPO/RM batch, the rollout reward, the RM's rollout accuracy and the
    summary quality (fraction of attributes stated correctly on validation users), for plus and untrained."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    keys = (("rollout_reward", "reward log σ(r_c - r_r)"), ("rollout_accuracy", "RM accuracy on rollout pairs"),
            ("eval_val_summary_score", "summary quality (attributes right, val)"))
    for method, color in (("plus", "C0"), ("untrained", "C1"), ("oracle", "C2"), ("btl", "C3")):
        for seed in config.table_seeds:
            path = os.path.join(workdir, f"{method}_s{seed}")
            if not os.path.exists(os.path.join(path, "metrics.jsonl")):
                continue
            rows = [r for r in experiment.read_metrics(path) if r["step"] > 0]
            for ax, (key, title) in zip(axes, keys):
                points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
                if points:
                    ax.plot(*zip(*points), color=color, alpha=0.7, label=method if seed == config.table_seeds[0] else None)
                ax.set_title(title)
    for ax in axes:
        ax.axvline(config.rm_warmup_steps + 0.5, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("rollout batch (dashed: end of RM warm-up, PPO starts)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    path = os.path.join(workdir, "curves.png")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_curves(workdir: str) -> str:
    """curves.png over rollout batches: (a) rollout reward log σ(r_c - r_r) and RM loss, (b) rollout, RM
    train and held-out accuracies, (c) per-token KL to the reference and the KL coefficient β. A dashed
    line marks the end of the RM warm-up (batches before it train the RM only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in experiment.read_metrics(workdir) if r["step"] > 0]
    fig, (ax_r, ax_a, ax_k) = plt.subplots(1, 3, figsize=(15, 4))
    for key, ax in (("rollout_reward", ax_r), ("rm_loss", ax_r), ("rollout_accuracy", ax_a), ("rm_accuracy", ax_a),
                    ("eval_test_seen_accuracy", ax_a), ("eval_test_ood_accuracy", ax_a),
                    ("eval_test_seen_accuracy_controversial", ax_a), ("eval_val_accuracy", ax_a),
                    ("eval_val_summary_score", ax_a), ("kl", ax_k), ("kl_coef", ax_k)):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if points:
            ax.plot(*zip(*points), label=key, marker="." if key.startswith("eval") else None)
    warmup = [r["step"] for r in rows if r.get("phase_rm_warmup")]
    for ax in (ax_r, ax_a, ax_k):
        if warmup:
            ax.axvline(max(warmup) + 0.5, color="gray", linestyle="--", linewidth=1, label="end of RM warm-up")
        ax.set_xlabel("rollout batch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax_r.set_title("reward (log σ) / RM loss")
    ax_a.set_title("pairwise accuracy")
    ax_k.set_title("KL to reference (per token) / β")
    ax_k.set_yscale("symlog", linthresh=1e-6)  # k1 KL can be slightly negative
    path = os.path.join(workdir, "curves.png")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
