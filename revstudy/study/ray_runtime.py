"""Ray for a study: an embedded instance (loopback only, stopped with its driver) or a
cluster, the resources a trial asks for, and the trainable that runs a trial in a worker."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.study.devices import check_gpu_share
from revstudy.study.reaper import start_reaper
from revstudy.study.trial_context import TrialContext


def _loopback_only() -> None:
    """Make an embedded Ray instance listen on 127.0.0.1 only.

    Ray resolves a loopback `_node_ip_address` to the machine's address, but on platforms
    where it does not support clusters (macOS, Windows) it runs every server on localhost;
    `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` asks for that behaviour on Linux too. Read when
    Ray is imported, so it is set before; the constant is also set if Ray was imported."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010  (module of Ray's)


# Ray's own advice after an interruption names its Tuner.restore (which revstudy never calls:
# it would unpickle the study folder) and complains about the metrics of trials it stopped
# before their first report; revstudy prints its own `revstudy resume` line instead. At the
# end of every run Tune also says where it wrote its experiment state: a timestamped log
# line in the middle of the study's summary, about files revstudy never reads back.
RAY_ADVICE = (
    "Resume experiment with:",
    "Resume training with:",
    "Failed to fetch metrics",
    "Wrote the latest version of all result files",
)


class _NoRayAdvice(logging.Filter):
    """Drops Ray Tune's log records that carry `RAY_ADVICE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in RAY_ADVICE)


def silence_ray_advice() -> None:
    """Keep Ray Tune's recovery advice out of a study's output (idempotent)."""
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoRayAdvice) for f in log.filters):
            log.addFilter(_NoRayAdvice())


def ray_init(address: str | None) -> None:
    """Start an embedded Ray on this machine (loopback only, watched by the reaper), or join
    the cluster at `address`; call before the first import of ray anywhere in the driver."""
    if not address:
        _loopback_only()
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    silence_ray_advice()
    if address:
        ray.init(address=address, log_to_driver=False)
        have = ray.cluster_resources()
        print(
            f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}: "
            f"{len(ray.nodes())} node(s), {have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs",
            file=sys.stderr,
        )
    else:
        # an embedded instance gets Ray's token authentication by default; its notice about
        # that is for cluster operators, not for a user running a study on a laptop
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        start_reaper()  # stops this Ray instance if the driver is killed (revstudy.study.reaper)
        ray.init(  # "local": always a new instance, never some Ray already on the machine
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=200 * 1024 * 1024,
        )


def _run_trial(params: dict[str, Any], context: TrialContext) -> None:
    """`revstudy.study.trial.run_trial`, imported in the worker: the driver never loads torch."""
    from revstudy.study.trial import run_trial

    run_trial(params, context)


def _run_pack(params: dict[str, Any], context: TrialContext) -> None:
    """`revstudy.study.pack_trial.run_pack`, imported in the worker."""
    from revstudy.study.pack_trial import run_pack

    run_pack(params, context)


def trainable(context: TrialContext, cpus_per_trial: float, packs: bool = False) -> Any:
    """The function trainable handed to Ray Tune: the trials' shared context bound once,
    each trial (a pack of trials with `packs`) reserving `cpus_per_trial` CPUs and the
    context's GPU share."""
    from ray import tune

    check_gpu_share(context.gpu_share)  # a study.json from before the check, or edited by hand
    fn = tune.with_parameters(_run_pack if packs else _run_trial, context=context)
    return tune.with_resources(fn, {"cpu": cpus_per_trial, "gpu": context.gpu_share})


def check_resources(address: str | None, cpus: float, gpus: float) -> None:
    """Refuse trials that the embedded local Ray can never place (they would wait forever);
    a cluster (`--address`) may still grow through its autoscaler, so there it is a note."""
    import ray

    have = ray.cluster_resources()
    n_gpu, n_cpu = have.get("GPU", 0.0), have.get("CPU", 0.0)
    if address:
        if gpus > n_gpu:
            print(
                f"note: the cluster has {n_gpu:g} GPU(s) now; trials asking for {gpus:g} "
                "wait until the autoscaler adds GPU workers",
                file=sys.stderr,
            )
        return
    if gpus > n_gpu:
        raise RevstudyError(
            f"--gpus-per-trial {gpus:g}: this machine has {n_gpu:g} GPU(s) that Ray can use; "
            "leave the option out (GPUs are used when present) or use --address for a cluster"
        )
    if cpus > n_cpu:
        raise RevstudyError(f"--cpus-per-trial {cpus:g}: this machine has {n_cpu:g} CPU(s)")
