"""Prometheus exposition of :class:`MetricValue` samples with prometheus_client.

Its own ``CollectorRegistry`` (the default one carries the Python process's metrics, which say
nothing about the stack), a collector that asks for the samples at scrape time, and families
built per name so that HELP and TYPE come once and a name's samples stay together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from opskit.services.capabilities import MetricValue
from opskit.vocabulary import MetricType

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

PREFIX = "opskit_"


class SampleCollector:
    """A prometheus_client custom collector over ``samples()``."""

    def __init__(self, samples: Callable[[], list[MetricValue]]):
        self.samples = samples

    def collect(self) -> Iterator:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        kinds = {
            MetricType.COUNTER: CounterMetricFamily,
            MetricType.GAUGE: GaugeMetricFamily,
            MetricType.HISTOGRAM: HistogramMetricFamily,
        }
        families: dict[str, object] = {}
        for sample in self.samples():
            name = PREFIX + sample.name
            label_names = [key for key, _value in sample.labels]
            family = families.get(name)
            if family is None:
                family = kinds[sample.type](name, sample.help, labels=label_names)
                families[name] = family
            label_values = [value for _key, value in sample.labels]
            if sample.type is MetricType.HISTOGRAM:
                buckets = [(_bound(le), count) for le, count in sample.buckets]
                family.add_metric(label_values, buckets=buckets, sum_value=sample.value)
            else:
                family.add_metric(label_values, sample.value)
        yield from families.values()


def _bound(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(float(le))


def registry_for(samples: Callable[[], list[MetricValue]]) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SampleCollector(samples))
    return registry
