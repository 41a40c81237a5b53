"""The population tree of a PBT / PB2 study (``hpo plots``): one lane per trial over its
epochs, coloured by its final value, with an arrow for every exploit (from the source's lane
at the copied epoch into the trial that copied it)."""

from __future__ import annotations

from pathlib import Path

from service.schemas import TrialPublic


def write_population_tree(trials: list[TrialPublic], directory: Path, metric: str) -> Path:
    """``population_tree.png`` in ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ordered = sorted(trials, key=lambda t: t.number)
    lanes = {t.number: lane for lane, t in enumerate(ordered)}
    values = [t.value for t in ordered if t.value is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    colours = plt.get_cmap("viridis")
    figure, axes = plt.subplots(figsize=(8, 1.0 + 0.45 * len(ordered)))
    for trial in ordered:
        epochs = sorted(int(k) for k in trial.intermediate_values) or [0]
        share = 0.5 if trial.value is None or high == low else (trial.value - low) / (high - low)
        lane = lanes[trial.number]
        axes.plot([0, max(epochs)], [lane, lane], color=colours(share), linewidth=4)
        axes.annotate(f"#{trial.number}", (0, lane), xytext=(-28, -4), textcoords="offset points")
        for step in trial.lineage:
            source = lanes.get(step.get("from_trial", -1))
            epoch = step.get("epoch")
            if source is None or not isinstance(epoch, int | float):
                continue
            axes.annotate(
                "",
                xy=(epoch, lane),
                xytext=(epoch, source),
                arrowprops={"arrowstyle": "->", "color": "crimson", "linewidth": 1.2},
            )
    axes.set_xlabel("epoch (arrows: exploit, from the copied trial at the copied epoch)")
    axes.set_yticks([])
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"Population: lane colour is the final {metric} (yellow highest)")
    path = directory / "population_tree.png"
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path
