#!/bin/bash
# Slurm job script for memo. run.py --backend slurm renders it (double-brace fields filled in)
# into results/NAME/_runs/RUN/job.sh and submits it with sbatch; the words after `--` on
# run.py's command line override these options (e.g. --partition, --cpus-per-task, --time).
# Array task i runs its share of the run's manifest: points[i-1::tasks].
#SBATCH --job-name={{name}}
#SBATCH --array=1-{{tasks}}
#SBATCH --output={{logs}}/%A.%a.out
#SBATCH --error={{logs}}/%A.%a.err
#SBATCH --requeue
set -eu
cd {{project}}
# memo/backends/task.py sets BLAS/torch threads from SLURM_CPUS_PER_TASK (else 1) before numpy loads.
exec {{python}} -m memo.backends.task {{manifest}} "$SLURM_ARRAY_TASK_ID"
