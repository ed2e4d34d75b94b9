# Helpers shared by probe.sh and submit.sh (prepended to them by the role; not run on its own).

# Print a JSON string literal for $1.
cesres_json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/\\t}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    printf '"%s"' "$s"
}

# State of a Slurm job: squeue while it is known there, then sacct (squeue forgets a job
# MinJobAge seconds after it ended), then the exit_code file the job script writes.
# Prints one upper-case word, or UNKNOWN.
cesres_job_state() {
    local job=$1 dir=$2 state rc
    state=$(squeue -h -j "$job" -o %T 2>/dev/null | head -n 1)
    if [ -z "$state" ]; then
        state=$(sacct -X -n -P -j "$job" -o State 2>/dev/null | head -n 1)
        state=${state%% *}
    fi
    if [ -z "$state" ] && [ -s "$dir/exit_code" ]; then
        rc=$(head -n 1 "$dir/exit_code")
        if [ "$rc" = 0 ]; then state=COMPLETED; else state=FAILED; fi
    fi
    printf '%s' "${state:-UNKNOWN}"
}
