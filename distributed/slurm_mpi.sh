#!/usr/bin/env bash
# Run a scenario on a SLURM allocation with the MPI backend: rank 0
# coordinates and writes the log, every other rank is a worker (one
# partition each). The log is byte-identical to a one-process run.
#
#   sbatch distributed/slurm_mpi.sh scenarios/quickstart.toml [asyncnet run options]
#   sbatch --nodes=4 --ntasks-per-node=16 distributed/slurm_mpi.sh SCENARIO
#
# Needs, on every node, the same checkout installed with the MPI extra:
#   pip install -e '.[mpi]'     (mpi4py, and MPICH's mpiexec from the package index)
# or a site MPI (module load ...) with mpi4py built against it; then set
# MPIEXEC="srun --mpi=pmix" (or pmi2, as the site documents).
#
#SBATCH --job-name=asyncnet
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --output=asyncnet-%j.out
set -euo pipefail

SCENARIO=${1:?usage: sbatch distributed/slurm_mpi.sh SCENARIO [asyncnet run options]}
shift
PY=${PYTHON:-python3}
NTASKS=${SLURM_NTASKS:-2}
if [ "$NTASKS" -lt 2 ]; then
    echo "slurm_mpi.sh: needs at least 2 tasks (rank 0 coordinates, the others are workers)" >&2
    exit 2
fi
# MPICH's mpiexec (hydra) reads the allocation's nodes from SLURM itself
MPIEXEC=${MPIEXEC:-mpiexec -n $NTASKS}
# a core per rank: spinning briefly on waits answers faster than sleeping
export ASYNCNET_MPI_SPIN=${ASYNCNET_MPI_SPIN:-0.001}
LOG=${LOG:-runs/$(basename "$SCENARIO" .toml)-${SLURM_JOB_ID:-local}.log}
mkdir -p "$(dirname "$LOG")"
echo "asyncnet: $NTASKS ranks ($((NTASKS - 1)) workers) on ${SLURM_JOB_NODELIST:-this machine}; log $LOG"
# shellcheck disable=SC2086  # MPIEXEC is a command line
exec $MPIEXEC "$PY" -m asyncnet run "$SCENARIO" --mpi --log "$LOG" "$@"
