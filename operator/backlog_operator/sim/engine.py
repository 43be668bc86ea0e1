"""The discrete-event engine: one FIFO queue, replicas serving one job at a time, a controller.

Called by sim.run (CLI, bench) and sim.staged (ScaleTest `mode: Simulated`). Virtual
time only. Events (completions, pods becoming ready, controller evaluations) sit in
one heap; arrivals are merged in from a sorted array, so there is no per-job event
object. Per-job state is an index into the arrival array plus one service-time draw;
per-second bookkeeping samples the time series. Cost grows with jobs, not replicas.

The controller (sim.ours or sim.keda) is pure: `step(state, view) -> Step`.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import math
import random
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from backlog_operator.sim.service import ServiceTime

# Heap entries are (time, seq, pod): pod >= 0 is that pod's job completing; the rarer
# events have negative codes: the controller's poll timer, a NOTIFY wake-up, and pod
# `p` becoming ready as _READY - p. Ties in time go by seq, i.e. in scheduling order.
_TIMER, _WAKE, _READY = -1, -2, -3


class ScaleIn(enum.Enum):
    """What happens to busy pods removed by a scale-in."""

    DRAIN = "drain"  # idle pods go first; busy ones finish their job, then exit (ours)
    KILL = "kill"  # arbitrary ready pods are deleted; their jobs are re-queued (plain HPA)


# View and Step are built once per controller reading (~600 k in a simulated day with
# NOTIFY wake-ups), so they are plain slotted dataclasses: a frozen one's __init__ costs
# ~2 us more (object.__setattr__ per field). Treat them as read-only all the same.
@dataclass(slots=True)
class View:
    """What a controller can observe at an evaluation (counters are cumulative). Read-only."""

    now: float
    ready: int
    in_flight: int
    oldest_ready_s: float | None
    target: int  # the workload's spec.replicas, as /scale reports it
    pods: int  # existing pods: starting, ready and draining
    arrived: int
    completed: int
    # Over the controller's trailing window (window_s), as the operator's source counts them:
    window_arrivals: int
    window_completions: int
    window_service_s: float  # service seconds of the completions in the window


@dataclass(slots=True)
class Step:
    """A controller's answer: the replicas it wants, when to call it again, its new state.

    Read-only (not frozen only for speed, see View).
    """

    desired: int
    next_eval_at: float
    state: Any


class Controller(Protocol):
    """A scaling policy as the engine drives it (sim.ours, sim.keda)."""

    @property
    def name(self) -> str: ...
    @property
    def scale_in(self) -> ScaleIn: ...
    @property
    def wake_debounce_s(self) -> float | None: ...  # None: arrivals wake nothing
    @property
    def floor(self) -> int: ...  # replicas once idle and settled (min replicas)
    @property
    def window_s(self) -> float: ...  # trailing window of the View's window_* counters
    def start(self) -> tuple[Any, float]: ...  # initial state, first evaluation time
    def step(self, state: Any, view: View) -> Step: ...


@dataclass(frozen=True, slots=True)
class Series:
    """Per-second samples at the end of each second."""

    arrivals: tuple[int, ...]
    backlog: tuple[int, ...]  # ready (queued) jobs
    in_flight: tuple[int, ...]
    replicas: tuple[int, ...]  # existing pods (what you pay for)
    desired: tuple[int, ...]  # spec.replicas set by the controller


@dataclass(frozen=True, slots=True)
class EngineResult:
    """Raw outcome of one run; sim.results turns it into the reported metrics."""

    waits: array[float]  # queue wait of each completed job (arrival -> start of the final attempt)
    arrived: int
    completed: int
    queued_at_end: int
    in_flight_at_end: int
    killed_in_flight: int
    scale_changes: int
    evaluations: int  # controller readings (poll timers and wake-ups)
    scale_log: tuple[tuple[float, int], ...]  # (time, new spec.replicas)
    replica_seconds: float
    max_backlog: int
    max_replicas: int
    last_arrival_s: float | None
    last_completion_s: float | None
    end_s: float
    series: Series
    done_at: array[float] | None  # per job completion time (record_completions=True)
    started_at: array[float] | None  # per job start of the attempt that completed (idem)


def simulate(
    arrivals: Sequence[float],
    controller: Controller,
    service: ServiceTime,
    *,
    startup_s: float = 5.0,
    seed: int = 0,
    horizon_s: float | None = None,
    max_tail_s: float = 3600.0,
    min_end_s: float = 0.0,
    record_completions: bool = False,
) -> EngineResult:
    """Run `controller` over sorted `arrivals` until drained and settled.

    The run lasts at least `horizon_s` (default: the last arrival's second) and `min_end_s`,
    then continues until the queue is empty and the controller has settled at its floor,
    or `max_tail_s` after the horizon at most. One function with local state on purpose:
    the per-job path is the cost, and locals are the cheapest state CPython has.
    """
    arr, n, ctl = arrivals, len(arrivals), controller
    # Two streams: job sizes are drawn up front in arrival order, so every policy sees the
    # same jobs (common random numbers); scale-in victims come from their own stream.
    victim_rng = random.Random(seed + 1_000_003)
    drain_mode = ctl.scale_in is ScaleIn.DRAIN
    debounce = ctl.wake_debounce_s
    window_s = ctl.window_s
    heap: list[tuple[float, int, int]] = []
    size = service.draws(random.Random(seed), n)  # per job, in arrival order
    done_at: array[float] | None = array("d", bytes(8 * n)) if record_completions else None
    started_at: array[float] | None = array("d", bytes(8 * n)) if record_completions else None
    queue: deque[int] = deque()  # job indices, FIFO
    idle: list[int] = []  # ready pods without a job
    pod_job: list[int] = []  # per pod id: current job
    pod_start: list[float] = []
    pod_seq: list[int] = []  # seq of the pending completion; -1 when not busy
    starting: dict[int, float] = {}  # pod -> ready at
    draining: set[int] = set()  # busy pods that exit after their job
    waits: array[float] = array("d")
    cum_completed: list[int] = [0]  # at each whole second, for trailing windows
    cum_service: list[float] = [0.0]
    changes: list[tuple[float, int]] = []
    seq = nbusy = target = pods = max_pods = killed = completed = 0
    rs = rs_at = service_done = 0.0
    last_completion: float | None = None

    def schedule(at: float, code: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (at, seq, code))

    def pods_change(now: float, delta: int) -> None:
        nonlocal rs, rs_at, pods, max_pods
        rs += pods * (now - rs_at)
        rs_at = now
        pods += delta
        max_pods = max(max_pods, pods)

    def start_idle(pod: int, job: int, now: float) -> None:
        nonlocal seq, nbusy
        seq += 1
        nbusy += 1
        pod_job[pod], pod_start[pod], pod_seq[pod] = job, now, seq
        heapq.heappush(heap, (now + size[job], seq, pod))

    def apply(desired: int, now: float) -> None:
        nonlocal target
        desired = max(desired, 0)
        if desired == target:
            return
        changes.append((now, desired))
        if desired > target:
            for _ in range(desired - target):
                pod = len(pod_seq)
                pod_job.append(-1)
                pod_start.append(0.0)
                pod_seq.append(-1)
                starting[pod] = now + startup_s
                schedule(now + startup_s, _READY - pod)
            pods_change(now, desired - target)
            target = desired
            return
        remove, target = target - desired, desired
        # The ReplicaSet deletes pods that are not ready yet first, newest first.
        for pod in sorted(starting, reverse=True)[:remove]:
            del starting[pod]
            remove -= 1
            pods_change(now, -1)
        if remove and drain_mode:
            drain(remove, now)
        elif remove:
            kill(remove, now)

    def drain(remove: int, now: float) -> None:
        # Idle pods carry the lowest deletion cost; busy ones stop claiming and exit when done.
        while remove and idle:
            idle.pop()
            remove -= 1
            pods_change(now, -1)
        busy = [p for p in range(len(pod_seq) - 1, -1, -1) if pod_seq[p] >= 0]
        draining.update([p for p in busy if p not in draining][:remove])

    def kill(remove: int, now: float) -> None:
        # Plain HPA/ReplicaSet: arbitrary ready pods; in-flight work is lost and retried.
        nonlocal killed, nbusy
        busy = [p for p in range(len(pod_seq)) if pod_seq[p] >= 0 and p not in draining]
        ready = sorted(idle) + busy
        victims = set(victim_rng.sample(ready, min(remove, len(ready))))
        idle[:] = [p for p in idle if p not in victims]
        lost = []
        for pod in victims:
            if pod_seq[pod] >= 0:
                lost.append(pod_job[pod])
                pod_seq[pod] = -1
                nbusy -= 1
            pods_change(now, -1)
        killed += len(lost)
        # Retried jobs keep their place: older than anything still queued.
        queue.extendleft(sorted(lost, reverse=True))
        while queue and idle:
            start_idle(idle.pop(), queue.popleft(), now)

    def pod_ready(pod: int, now: float) -> None:
        if starting.pop(pod, None) is None:
            return  # deleted while starting
        if queue:
            start_idle(pod, queue.popleft(), now)
        else:
            idle.append(pod)

    def drain_exit(pod: int, now: float) -> None:
        nonlocal nbusy
        draining.discard(pod)
        pod_seq[pod] = -1
        nbusy -= 1
        pods_change(now, -1)

    def view(now: float, arrived: int) -> View:
        since = now - window_s
        # Arrivals: exact (sorted array). Completions: from the last whole second at or
        # before the window start, which errs by under a second of a 60 s window.
        edge = min(max(int(since), 0), len(cum_completed) - 1)
        return View(  # positional (cheaper), in field order
            now,  # now
            len(queue),  # ready
            nbusy,  # in_flight
            now - arr[queue[0]] if queue else None,  # oldest_ready_s
            target,  # target
            pods,  # pods
            arrived,  # arrived
            completed,  # completed
            arrived - bisect.bisect_right(arr, since, 0, arrived),  # window_arrivals
            completed - cum_completed[edge],  # window_completions
            service_done - cum_service[edge],  # window_service_s
        )

    horizon = horizon_s if horizon_s is not None else (math.ceil(arr[-1]) if n else 0.0)
    horizon = max(horizon, min_end_s)
    state, first_eval = ctl.start()
    # The poll timer: any reading restarts it, so most timers are superseded before they
    # are due. Rather than a heap entry per restart, the heap holds the earliest of them
    # (the anchor); when a superseded entry comes out, the current timer goes in with the
    # seq it got when it was set, so events come out in exactly the order they would if
    # every restart had pushed one (stale entries would have been skipped anyway).
    seq += 1
    timer_at, timer_seq, timer_pushed = first_eval, seq, True
    anchor_at, anchor_seq, anchor_live = first_eval, seq, True
    heapq.heappush(heap, (first_eval, seq, _TIMER))
    wake_pending = False
    max_backlog = ai = second = evaluations = 0
    series: tuple[list[int], ...] = ([], [], [], [], [])
    heappop, heappush, popleft = heapq.heappop, heapq.heappush, queue.popleft
    enqueue, wait_append = queue.append, waits.append
    while True:
        edge = second + 1.0
        first_ai = ai
        while True:
            upto = edge
            if ai < n:
                at_arrival = arr[ai]
                if at_arrival < edge:
                    upto = at_arrival
            while heap and heap[0][0] <= upto:
                t, s, pod = heappop(heap)
                if pod >= 0:  # a completion: the hot path, kept inline
                    if pod_seq[pod] != s:
                        continue  # the pod was killed; this completion never happens
                    job, start = pod_job[pod], pod_start[pod]
                    wait_append(start - arr[job])
                    completed += 1
                    service_done += t - start
                    last_completion = t
                    if done_at is not None and started_at is not None:
                        done_at[job] = t
                        started_at[job] = start
                    if draining and pod in draining:
                        drain_exit(pod, t)
                    elif queue:
                        job = popleft()
                        seq += 1
                        pod_job[pod], pod_start[pod], pod_seq[pod] = job, t, seq
                        heappush(heap, (t + size[job], seq, pod))
                    else:
                        pod_seq[pod] = -1
                        nbusy -= 1
                        idle.append(pod)
                    continue
                if pod <= _READY:
                    pod_ready(_READY - pod, t)
                    continue
                if pod == _TIMER:
                    if s == anchor_seq:
                        anchor_live = False
                    if s != timer_seq:  # superseded: put the current timer in, if it is not
                        if not timer_pushed:
                            heappush(heap, (timer_at, timer_seq, _TIMER))
                            timer_pushed, anchor_live = True, True
                            anchor_at, anchor_seq = timer_at, timer_seq
                        continue
                else:  # _WAKE
                    wake_pending = False
                evaluations += 1
                step = ctl.step(state, view(t, ai))
                state = step.state
                # Any reading restarts the poll timer (see above).
                seq += 1
                timer_at, timer_seq = step.next_eval_at, seq
                if anchor_live and anchor_at <= timer_at:
                    timer_pushed = False  # goes in when the anchor comes out
                else:
                    heappush(heap, (timer_at, seq, _TIMER))
                    timer_pushed, anchor_live = True, True
                    anchor_at, anchor_seq = timer_at, seq
                desired = step.desired
                if desired != target:
                    apply(desired, t)
            if upto >= edge:
                break
            # An arrival: start it on an idle pod (start_idle, inline) or queue it.
            if idle:
                pod = idle.pop()
                seq += 1
                nbusy += 1
                pod_job[pod], pod_start[pod], pod_seq[pod] = ai, upto, seq
                heappush(heap, (upto + size[ai], seq, pod))
            else:
                enqueue(ai)
                if len(queue) > max_backlog:
                    max_backlog = len(queue)
            if debounce is not None and not wake_pending:
                wake_pending = True  # NOTIFY: one debounced wake-up per burst
                seq += 1
                heappush(heap, (upto + debounce, seq, _WAKE))
            ai += 1
        for column, value in zip(
            series, (ai - first_ai, len(queue), nbusy, pods, target), strict=True
        ):
            column.append(value)
        cum_completed.append(completed)
        cum_service.append(service_done)
        second += 1
        if second >= horizon and ai >= n:
            drained = not queue and not nbusy
            settled = target <= ctl.floor and pods == target
            if (drained and settled) or second >= horizon + max_tail_s:
                break
    end = float(second)
    pods_change(end, 0)
    return EngineResult(
        waits=waits,
        arrived=ai,
        completed=completed,
        queued_at_end=len(queue),
        in_flight_at_end=nbusy,
        killed_in_flight=killed,
        scale_changes=len(changes),
        evaluations=evaluations,
        scale_log=tuple(changes),
        replica_seconds=rs,
        max_backlog=max_backlog,
        max_replicas=max_pods,
        last_arrival_s=arr[n - 1] if n else None,
        last_completion_s=last_completion,
        end_s=end,
        series=Series(*(tuple(column) for column in series)),
        done_at=done_at,
        started_at=started_at,
    )
