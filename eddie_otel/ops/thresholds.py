"""Every alert threshold and alert delay, and the success-indicator targets they sit beside.

Read by the alert rules (`alerts`) and by the dashboard (`dashboard`), which shows the same numbers as
thresholds on its panels; it imports neither, so both can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eddie_otel.objectives import target

__all__ = ["THRESHOLDS", "Thresholds"]


@dataclass(frozen=True)
class Thresholds:
    """Every alert threshold and alert delay, and the success-indicator targets they sit beside."""

    # The window of the count and ratio alerts: long enough to smooth one burst,
    # short enough to warn within minutes.
    window: str = "5m"
    # A few timeouts are what the fallback exists for; more than ten in five
    # minutes across all agents means splitting no longer absorbs them.
    timeouts: int = 10
    # Alerting at 10 % failures leaves room below the 95 % success target
    # (a missed target shows red on the dashboard; a page needs a clear fault).
    failure_ratio: float = 0.10
    # The success-indicator targets (eddie_otel.objectives says why each is what it is).
    # The p99 target is a bucket boundary of the catalogue, so
    # `histogram_quantile(...) > 60` is exact, not interpolated.
    latency_p99_seconds: float = target("latency_p99_seconds").threshold
    agent_balance: float = target("agent_balance_ratio").threshold
    merge_efficiency: float = target("merge_efficiency").threshold
    # Merges happen once per split, far less often than tasks finish: a longer
    # window keeps a single merge with many duplicates from firing alone.
    merge_window: str = "15m"
    # Success-indicator targets shown as dashboard thresholds (not alerts: the
    # failure-ratio and timeout alerts cover the same faults with margin).
    success_rate: float = target("success_rate").threshold
    timeouts_per_hour: float = target("timeouts_per_hour").threshold
    # How long a condition must hold before its alert fires. A depth violation
    # is rare and means lost work: fire at once. The others are noisy at low
    # traffic and wait longer the slower their signal moves.
    timeouts_for: str = "1m"
    depth_for: str = "0s"
    failure_for: str = "5m"
    latency_for: str = "10m"
    imbalance_for: str = "15m"
    merge_for: str = "15m"
    # Two minutes of failed scrapes (a dozen at a 10 s interval) rule out a restart.
    endpoint_down_for: str = "2m"
    # A container's memory usage (as docker stats shows it) above this share of its limit: the kernel
    # reclaims page cache harder and the next allocation peak is an OOM kill. Five minutes rule out one peak.
    container_memory_ratio: float = 0.90
    container_memory_for: str = "5m"
    # An OOM kill is lost work (the agent's process, often the whole container): fire at once.
    oom_for: str = "0s"
    # An agent running above this share of the capacity it said it has queues what comes next: chunks
    # created by splits wait, so the fallback rescues late. Ten minutes rule out a burst of splits.
    agent_saturation: float = 0.90
    agent_saturation_for: str = "10m"
    # An agent with running tasks and nothing recorded for it (no heartbeat, no finished work) for five
    # minutes is hung or gone, and its tasks are lost until their timeouts fire; one more minute rules
    # out a heartbeat late by a scrape.
    agent_silent_seconds: int = 300
    agent_silent_for: str = "1m"


THRESHOLDS = Thresholds()
