#!/bin/bash
# Grid Engine job script for memo. run.py --backend sge renders it (double-brace fields filled
# in) into results/NAME/_runs/RUN/job.sh and submits it with qsub; the words after `--`
# on run.py's command line come after these options, so they win (e.g. -q, -pe, -l h_rt).
# Array task i runs its share of the run's manifest: points[i-1::tasks].
#$ -N exp
#$ -t 1-2
#$ -S /bin/bash
#$ -o <root>/logs/exp/$JOB_ID.$TASK_ID.out
#$ -e <root>/logs/exp/$JOB_ID.$TASK_ID.err
#$ -r y
set -eu
cd <project>
# memo/backends/task.py sets BLAS/torch threads from NSLOTS (-pe smp N; else 1) before numpy loads.
exec <python> -m memo.backends.task <root>/results/exp/_runs/<run>/manifest.json "$SGE_TASK_ID"
