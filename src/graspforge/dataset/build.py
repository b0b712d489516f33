"""Moved to :mod:`graspforge.pipelines.dataset_build`; this alias keeps old imports working."""

# the module's __all__ names only its re-exports of io.dataset_index, so the star import alone would
# miss the builder itself
from ..pipelines.dataset_build import *  # noqa: F401,F403
from ..pipelines.dataset_build import (BACKENDS, STALE_CLAIM_SECONDS, BuildReport, DatasetSettings, Job, batches,  # noqa: F401
                                       build_dataset, claim_job, claim_path, dataset_summary, expand_objects, grasp_path,
                                       job_done, parse_shard, plan_jobs, record_path, release_job, run_batch, shard_jobs)
