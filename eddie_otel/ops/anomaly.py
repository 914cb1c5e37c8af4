"""Anomaly detection in Prometheus rules: a signal far above its usual level for its job, time of day and week.

After grafana/promql-anomaly-detection. Four signals per scrape job, each its `signal` label and
the `<signal>` of its rule names:

- `timeouts`: timeouts per second (`timeout_events_total`);
- `failure_ratio`: failed / finished tasks;
- `latency_p99`: the p99 of task durations, seconds;
- `splits`: task splits per second (`task_split_total`).

Each signal is recorded every 5 minutes as its value over 5 minutes, `eddie:anomaly:<signal>:rate5m`
(by job, with the `signal` label), and its band is made of that week of 5-minute values:

- `eddie:anomaly:<signal>:baseline`: the mean of the last week's values, averaged with the mean of
  the same hour of the previous week (the hour centred on this time one week ago, `[1h] offset
  167h30m`), the seasonal term. It exists only where the seasonal term does, which is how "a week
  of history" is told: the signal's recording reaches back to that hour (6 d 23 h 30 min after
  it began; gaps in between do not matter). Before that there is no baseline, no band, no alert;
  nor for the hour after an hour with no value a week ago.
- `eddie:anomaly:<signal>:stddev`: the standard deviation of the week's values.
- `eddie:anomaly:<signal>:upper` and `:lower`: baseline ± max(3 standard deviations, 10 % of the
  baseline), the lower one never below 0.

`EddieAnomaly` (one rule per signal, the `signal` label says which) fires only upwards: the
signal above its upper band for 15 minutes, and above its floor (timeouts and splits: 5 an
hour; failure ratio: 0.05; p99: 10 s), so that a quiet job's noise never pages.

The rules are their own group, `eddie-anomaly`, evaluated every 5 minutes whatever Prometheus's
global evaluation interval. Cost per scrape job: 4 signals x 5 recorded series (rate5m, baseline,
stddev, upper, lower) = 20 series, one sample each per 5 minutes. Each evaluation reads, per
signal, the week of 5-minute values twice (mean and standard deviation: 2 x 2 016 samples) plus
the seasonal hour (12): about 4 050 samples per signal, 16 200 per job every 5 minutes, besides
the raw series the four 5-minute values are computed from. At the global interval of
dashboards/prometheus.yml (15 s) the same windows would hold 20 times as many samples and be read
20 times as often.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eddie_otel.ops import promql, slo
from eddie_otel.ops.rule import Recording, Rule

__all__ = [
    "BAND_STDDEVS",
    "FOR",
    "GROUP",
    "INTERVAL",
    "MIN_BAND",
    "SIGNALS",
    "Signal",
    "alert_rules",
    "record_name",
    "recording_rules",
    "signal",
]

GROUP = "eddie-anomaly"
# The group's evaluation interval: one recorded value per 5 minutes, 2 016 a week.
INTERVAL = "5m"
WINDOW = "5m"
HISTORY = "1w"
# The seasonal term: the hour centred on this time one week ago.
SEASON_WINDOW = "1h"
SEASON_OFFSET = "167h30m"
BAND_STDDEVS = 3
# The band is never narrower than this share of the baseline (a flat signal has no deviation).
MIN_BAND = 0.1
FOR = "15m"


@dataclass(frozen=True)
class Signal:
    """One signal: its PromQL per job over 5 minutes, its floor, how an annotation shows it, and its panel."""

    name: str
    # Its PromQL per job over 5 minutes, narrowed by `where` (the rules: everything; the dashboard: `$job`).
    query: Callable[[promql.Where], str]
    # The alert stays silent while the signal is at or below this, whatever its band.
    floor: str
    floor_text: str
    what: str
    value: str
    # The dashboard panel the alert links to, which draws the band.
    panel: str
    # Whether several jobs' values add up (events per second) or not (a ratio, a quantile).
    additive: bool

    @property
    def expr(self) -> str:
        """The recorded PromQL: per job, every job."""
        return self.query(None)


_BY = slo.BY

SIGNALS: tuple[Signal, ...] = (
    Signal(
        "timeouts",
        lambda where: promql.sum_rate(promql.TIMEOUT_EVENTS, WINDOW, _BY, where=where),
        "5 / 3600",
        "5 an hour",
        "timeouts",
        '{{ printf "%.3g" $value }} a second',
        "Timeout events by agent and stage",
        additive=True,
    ),
    Signal(
        "failure_ratio",
        lambda where: promql.failure_ratio(WINDOW, _BY, where=where),
        "0.05",
        "5 %",
        "failure ratio",
        "{{ $value | humanizePercentage }}",
        "Success rate by stage",
        additive=False,
    ),
    Signal(
        "latency_p99",
        # No task in 5 minutes makes the quantile NaN, which would poison a week of means: dropped.
        lambda where: f"{promql.quantile(0.99, promql.TASK_EXECUTION, WINDOW, _BY, where=where)} >= 0",
        "10",
        "10 s",
        "task latency p99",
        "{{ $value | humanizeDuration }}",
        "Task execution time by stage",
        additive=False,
    ),
    Signal(
        "splits",
        lambda where: promql.sum_rate(promql.TASK_SPLIT, WINDOW, _BY, where=where),
        "5 / 3600",
        "5 an hour",
        "task splits",
        '{{ printf "%.3g" $value }} a second',
        "Task splits by agent",
        additive=True,
    ),
)


def signal(name: str) -> Signal:
    """The signal called `name`."""
    [found] = [s for s in SIGNALS if s.name == name]
    return found


def record_name(signal: Signal, part: str) -> str:
    """The recorded series `eddie:anomaly:<signal>:<part>` (rate5m, baseline, stddev, upper, lower)."""
    return f"eddie:anomaly:{signal.name}:{part}"


def _band(signal: Signal) -> str:
    baseline, stddev = record_name(signal, "baseline"), record_name(signal, "stddev")
    # max(3 standard deviations, 10 % of the baseline), per job: the first where it is the larger, else the second.
    return f"({BAND_STDDEVS} * {stddev} > {MIN_BAND:g} * {baseline} or {MIN_BAND:g} * {baseline})"


def recording_rules() -> list[Recording]:
    """Per signal, in evaluation order: rate5m, baseline, stddev, upper, lower."""
    recorded = []
    for signal in SIGNALS:
        value = record_name(signal, "rate5m")
        week = f"avg_over_time({value}[{HISTORY}])"
        season = f"avg_over_time({value}[{SEASON_WINDOW}] offset {SEASON_OFFSET})"
        baseline = record_name(signal, "baseline")
        recorded += [
            Recording(value, f'label_replace({signal.expr}, "signal", "{signal.name}", "", "")'),
            # Only where the seasonal term exists: a week of history.
            Recording(baseline, f"({week} + {season}) / 2"),
            Recording(record_name(signal, "stddev"), f"stddev_over_time({value}[{HISTORY}])"),
            Recording(record_name(signal, "upper"), f"{baseline} + {_band(signal)}"),
            Recording(record_name(signal, "lower"), f"clamp_min({baseline} - {_band(signal)}, 0)"),
        ]
    return recorded


def alert_rules() -> list[Rule]:
    """EddieAnomaly, one rule per signal: above its upper band and its floor for 15 minutes."""
    rules = []
    for signal in SIGNALS:
        value = record_name(signal, "rate5m")
        rules.append(
            Rule(
                alert="EddieAnomaly",
                expr=f"{value} > {record_name(signal, 'upper')} and {value} > {signal.floor}",
                for_=FOR,
                severity="warning",
                summary=f"Unusually high {signal.what} in job {{{{ $labels.job }}}}",
                description=(
                    f"The {signal.what} of job {{{{ $labels.job }}}} over the last 5 minutes: {signal.value}. "
                    f"It has stayed above the upper band of its last week (the week's mean averaged with the same "
                    f"hour a week ago, + {BAND_STDDEVS} standard deviations) and above {signal.floor_text} "
                    f"for {FOR[:-1]} minutes. "
                    f"Compare eddie:anomaly:{signal.name}:rate5m with eddie:anomaly:{signal.name}:upper."
                ),
                panel=signal.panel,
                labels=(("signal", signal.name),),
            )
        )
    return rules
