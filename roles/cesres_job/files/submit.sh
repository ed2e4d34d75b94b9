# Submit the run's job unless the run already has a live or completed job.
# Arguments: RUN_DIR (absolute) MODE (submit or check) RESUBMIT_STATES (the Slurm states whose run is
# submitted again, space-separated: cesres_ctl.rules.RESUBMIT_STATES through the role's filter; any
# other state, UNKNOWN included, keeps the job, never risking a duplicate). Holds a lock on the run
# directory, so concurrent `cesres-ctl train` of the same inputs submit one job. With "check", only
# report (submitted is then false, and "existing" says whether the run has a job to keep).
# Prints one line: CESRES_RESULT {"job_id":..,"state":..,"submitted":true|false,"previous_job_id":..}
set -u
run_dir=$1
mode=$2
resubmit=" $3 "
job=""
state=""
previous=""
if [ "$mode" = check ]; then
    if [ -s "$run_dir/jobid" ]; then
        job=$(head -n 1 "$run_dir/jobid")
        state=$(cesres_job_state "$job" "$run_dir")
    fi
    if [ -z "$state" ] || [[ $resubmit == *" $state "* ]]; then existing=false; else existing=true; fi
    printf 'CESRES_RESULT {"job_id":"%s","state":"%s","submitted":false,"existing":%s,"previous_job_id":""}\n' \
        "$job" "$state" "$existing"
    exit 0
fi
cd "$run_dir" || { echo "cesres-job: no run directory $run_dir" >&2; exit 3; }
exec 9>>"$run_dir/.submit.lock"
if ! flock -w 120 9; then
    echo "cesres-job: $run_dir is locked by another submission" >&2
    exit 4
fi
if [ -s jobid ]; then
    job=$(head -n 1 jobid)
    state=$(cesres_job_state "$job" "$run_dir")
fi
if [ -n "$state" ] && [[ $resubmit != *" $state "* ]]; then
    # Live or done (UNKNOWN: nothing tells it ended, so never risk a duplicate).
    submitted=false
else
    # No job yet, or it ended without completing: submit (again), keeping the old results.
    if [ -n "$job" ]; then
        previous=$job
        if [ -e results ]; then mv results "results.$job"; fi
        rm -f exit_code
    fi
    if ! out=$(sbatch --parsable job.sbatch 2>&1); then
        echo "sbatch refused the job: $out" >&2
        exit 5
    fi
    job=${out##*$'\n'}
    job=${job%%;*}
    printf '%s\n' "$job" >jobid.new && mv jobid.new jobid
    printf '%s\n' "$job" >>jobs
    state=PENDING
    submitted=true
fi
printf 'CESRES_RESULT {"job_id":"%s","state":"%s","submitted":%s,"existing":true,"previous_job_id":"%s"}\n' \
    "$job" "$state" "$submitted" "$previous"
