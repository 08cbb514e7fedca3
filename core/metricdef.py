"""One declaration per metric family: its name, type, help text, labels, and the closed set
of values of each label that has one.

Collectors emit from these declarations; the README's metric tables are generated from
them, and the contract tests, the dashboard and alert-rule checks read them. Nothing else
spells a metric name, a help text or a label list.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

Kind = Literal["gauge", "counter"]
MetricFamily = GaugeMetricFamily | CounterMetricFamily


@dataclass(frozen=True)
class Family:
    name: str  # as exposed, counters with their _total
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")
        if not set(self.values) <= set(self.labels):
            raise ValueError(f"{self.name}: values given for labels it does not have")

    def new(self, omit: Collection[str] = ()) -> MetricFamily:
        """An empty family to add samples to, in the label order declared, without the
        labels in ``omit`` (an opt-in label that is switched off)."""
        labels = [label for label in self.labels if label not in omit]
        if self.kind == "counter":
            # prometheus_client adds _total itself.
            return CounterMetricFamily(self.name.removesuffix("_total"), self.help,
                                       labels=labels)
        return GaugeMetricFamily(self.name, self.help, labels=labels)

    def of(self, value: float) -> MetricFamily:
        """The family with its one unlabelled sample."""
        family = self.new()
        family.add_metric([], value)
        return family


def markdown_table(families: Iterable[Family]) -> str:
    """The README's metric reference: one row per family, closed label values listed."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for f in families:
        meaning = f.help
        for label, values in f.values.items():
            meaning += f" {label}: {', '.join(values)}."
        meaning = meaning.replace("<", "&lt;").replace(">", "&gt;")  # /proc/<pid> is not HTML
        rows.append(f"| `{f.name}` | {f.kind} | {', '.join(f.labels)} | {meaning} |")
    return "\n".join(rows)
